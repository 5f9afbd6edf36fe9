"""Adversarial generators: the objectives against closed forms, the two-player optimizer,
``fit_gan``, and ``GeneratorPrior`` (samples, latent form under NUTS, pytree, errors).

Closed forms used:

* the optimal discriminator of ``p = N(0, 1)`` against ``q = N(1, 1)`` is
  ``D* = p / (p + q) = sigmoid(1/2 - x)``, and the discriminator's expected log-likelihood at
  ``D*`` is ``2 JS(p || q) - 2 log 2`` (JS by quadrature);
* the WGAN-GP critic between ``N(0, I)`` and ``N(mu, I)`` (``W_1 = |mu|``): for the soft
  penalty ``lambda (|grad C| - 1)^2`` the optimal critic is linear along ``mu`` with slope
  ``k* = 1 + W_1 / (2 lambda)`` (maximise ``k W_1 - lambda (k - 1)^2``), so its dual estimate
  is ``k* W_1`` and its gradient norm ``k*`` between the two means;
* a linear generator ``x = A z + b`` under ``y ~ N(x, s^2 I)``: the posterior of ``z`` is
  Gaussian with precision ``I + A^T A / s^2`` and mean ``Sigma A^T (y - b) / s^2``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
import scipy.integrate
import scipy.stats

import numpyro_hgf as nh
from numpyro_hgf.distributions.generator import GeneratorDensityError
from numpyro_hgf.objectives.adversarial import (
    adversarial_game_loss,
    discriminator_log_likelihood,
    discriminator_loss,
    gradient_penalty,
    wasserstein_critic_loss,
)

KEY = jax.random.key(0)


def _linear_generator(A, b):
    """``GeneratorPrior`` of ``x = A z + b`` (an ``MLP`` with no hidden layer)."""
    A, b = jnp.asarray(A), jnp.asarray(b)
    module = nh.nn.MLP(hidden=(), out_dim=A.shape[0])
    params = {"Dense_0": {"kernel": A.T, "bias": b}}
    return nh.distributions.GeneratorPrior(module, params, A.shape[1])


def _linear_critic(params, x):
    return params["a"] * x[:, 0] + params["b"]


# -- the discriminator: D* = p / (p + q) and the JS divergence -------------------------------
def _js_normal_01():
    p = scipy.stats.norm(0, 1).pdf
    q = scipy.stats.norm(1, 1).pdf

    def integrand(x):
        m = 0.5 * (p(x) + q(x))
        return 0.5 * p(x) * np.log(p(x) / m) + 0.5 * q(x) * np.log(q(x) / m)

    return scipy.integrate.quad(integrand, -12, 13)[0]


def test_discriminator_log_likelihood_at_the_optimum_is_2js_minus_2log2():
    k1, k2 = jax.random.split(KEY)
    n = 400_000
    real, fake = jax.random.normal(k1, (n, 1)), 1.0 + jax.random.normal(k2, (n, 1))
    optimum = {"a": -1.0, "b": 0.5}  # logit D* = log p - log q = 1/2 - x
    value = float(discriminator_log_likelihood(_linear_critic, optimum, real, fake))
    expected = 2 * _js_normal_01() - 2 * np.log(2.0)
    # per-row terms have sd < 1: 4 / sqrt(n) is over 5 standard errors
    assert abs(value - expected) < 4 / np.sqrt(n), (value, expected)
    assert float(discriminator_loss(_linear_critic, optimum, real, fake)) == pytest.approx(-value)
    # negative control: any other discriminator has a lower log-likelihood (D* is the arg max)
    for other in ({"a": -0.7, "b": 0.35}, {"a": -1.0, "b": 0.8}, {"a": -1.4, "b": 0.7}):
        worse = float(discriminator_log_likelihood(_linear_critic, other, real, fake))
        assert worse < expected - 0.005, (other, worse, expected)


@pytest.fixture(scope="module")
def trained_discriminators():
    """A small MLP discriminator trained by the BCE objective on ``p = N(0, 1)`` against
    ``q = N(shift, 1)``, ``shift`` in (1, 1.6); its ``D`` on a grid."""
    critic = nh.nn.MLP(hidden=(16,), out_dim=1)
    apply = lambda p, x: critic.apply({"params": p}, x)
    opt = optax.adam(1e-2)
    grid = jnp.linspace(-2.0, 3.0, 26)[:, None]

    @jax.jit
    def train(shift):
        params = critic.init(KEY, grid[:1])["params"]

        def step(carry, key):
            p, state = carry
            k1, k2 = jax.random.split(key)
            real = jax.random.normal(k1, (512, 1))
            fake = shift + jax.random.normal(k2, (512, 1))
            grads = jax.grad(discriminator_loss, argnums=1)(apply, p, real, fake)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        keys = jax.random.split(jax.random.key(1), 1500)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys)
        return jax.nn.sigmoid(apply(params, grid)[:, 0])

    return np.asarray(grid[:, 0]), {s: np.asarray(train(s)) for s in (1.0, 1.6)}


def test_a_trained_discriminator_approaches_p_over_p_plus_q(trained_discriminators):
    grid, trained = trained_discriminators
    d_star = 1.0 / (1.0 + np.exp(grid - 0.5))  # N(0,1) vs N(1,1)
    assert np.max(np.abs(trained[1.0] - d_star)) < 0.06, np.abs(trained[1.0] - d_star)
    # negative control: the discriminator of another pair is not this D*
    assert np.max(np.abs(trained[1.6] - d_star)) > 0.12


# -- the WGAN-GP critic: W1 and a unit gradient between the masses ---------------------------
@pytest.fixture(scope="module")
def wgan_gp_critics():
    """A critic trained on ``N(0, I_2)`` (fake) against ``N(mu, I_2)`` (real), ``|mu| = 2``,
    with the penalty weight ``lambda`` (10, and a negligible 1e-3); returns per ``lambda``
    the dual estimate on fresh draws and the gradient norms on the segment ``0 -> mu``."""
    critic = nh.nn.MLP(hidden=(32, 32), out_dim=1)
    apply = lambda p, x: critic.apply({"params": p}, x)
    mu = jnp.array([np.sqrt(2.0), np.sqrt(2.0)])
    opt = optax.adam(3e-3, b1=0.5, b2=0.9)
    segment = jnp.linspace(0.0, 1.0, 11)[:, None] * mu

    @jax.jit
    def train(weight):
        params = critic.init(KEY, mu[None])["params"]

        def loss(p, key):
            k1, k2, k3 = jax.random.split(key, 3)
            real = mu + jax.random.normal(k1, (256, 2))
            fake = jax.random.normal(k2, (256, 2))
            w = wasserstein_critic_loss(apply, p, real, fake)
            return w + gradient_penalty(apply, p, real, fake, k3, weight)

        def step(carry, key):
            p, state = carry
            updates, state = opt.update(jax.grad(loss)(p, key), state, p)
            return (optax.apply_updates(p, updates), state), None

        keys = jax.random.split(jax.random.key(1), 1200)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys)
        k1, k2 = jax.random.split(jax.random.key(2))
        real = mu + jax.random.normal(k1, (50_000, 2))
        fake = jax.random.normal(k2, (50_000, 2))
        dual = -wasserstein_critic_loss(apply, params, real, fake)
        grads = jax.vmap(jax.grad(lambda x: apply(params, x[None])[0, 0]))(segment)
        return dual, jnp.linalg.norm(grads, axis=-1)

    return {w: tuple(np.asarray(v) for v in train(w)) for w in (10.0, 1e-3)}


def test_wgan_gp_critic_estimates_w1_with_unit_gradient(wgan_gp_critics):
    w1, lam = 2.0, 10.0
    slope = 1.0 + w1 / (2 * lam)  # 1.1: the soft penalty's optimum
    dual, norms = wgan_gp_critics[lam]
    assert abs(float(dual) - slope * w1) < 0.1, dual
    assert np.all(np.abs(norms - slope) < 0.08), norms
    # negative control: without the penalty the dual is unbounded (no Lipschitz bound)
    dual_free, norms_free = wgan_gp_critics[1e-3]
    assert float(dual_free) > 3 * w1 and np.all(norms_free > 3.0), (dual_free, norms_free)


# -- the two-player optimizer -----------------------------------------------------------------
def test_gan_optimizer_steps_the_generator_once_per_n_critic_and_clips_the_critic():
    params = {"critic": {"w": jnp.zeros(3)}, "generator": {"w": jnp.zeros(2)}}
    opt = nh.train.gan_optimizer(optax.sgd(1.0), optax.sgd(1.0), n_critic=3)
    state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    moved = []
    for _ in range(7):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        moved.append(float(params["generator"]["w"][0]))
    np.testing.assert_array_equal(params["critic"]["w"], -7.0 * np.ones(3))
    assert moved == [0.0, 0.0, -1.0, -1.0, -1.0, -2.0, -2.0]  # steps 3 and 6
    clipped = nh.train.gan_optimizer(optax.sgd(1.0), optax.sgd(1.0), clip_value=0.01)
    p = {"critic": {"w": jnp.zeros(3)}, "generator": {"w": jnp.zeros(2)}}
    updates, _ = clipped.update(grads, clipped.init(p), p)
    p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(p["critic"]["w"], -0.01)
    np.testing.assert_allclose(p["generator"]["w"], -1.0)  # not clipped


def test_the_game_loss_gives_each_player_its_own_gradient():
    """One scalar: its critic gradient is the critic loss's, its generator gradient the
    non-saturating generator loss's, its value the critic loss."""
    critic = {"a": jnp.array(0.7), "b": jnp.array(-0.2)}
    generator = {"A": jnp.array([[0.5]]), "b": jnp.array([0.3])}
    gen_fn = lambda p, z: z @ p["A"] + p["b"]
    real, key = jnp.linspace(-1.0, 2.0, 8)[:, None], jax.random.key(3)
    params = {"critic": critic, "generator": generator}
    value, grads = jax.value_and_grad(
        lambda p: adversarial_game_loss("ns", _linear_critic, gen_fn, p, real, key, latent_dim=1)
    )(params)
    z = jax.random.normal(jax.random.split(key)[0], (8, 1))
    fake = gen_fn(generator, z)
    assert float(value) == pytest.approx(
        float(discriminator_loss(_linear_critic, critic, real, fake))
    )
    g_critic = jax.grad(lambda c: discriminator_loss(_linear_critic, c, real, fake))(critic)
    g_gen = jax.grad(lambda g: jnp.mean(jax.nn.softplus(-_linear_critic(critic, gen_fn(g, z)))))(
        generator
    )
    for a, b in zip(
        jax.tree.leaves(grads),
        jax.tree.leaves({"critic": g_critic, "generator": g_gen}),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # negative control: the zero-sum gradient (minus the critic loss) is not the NS one
    zero_sum = jax.grad(lambda g: -discriminator_loss(_linear_critic, critic, real, gen_fn(g, z)))
    assert not np.allclose(zero_sum(generator)["b"], grads["generator"]["b"], rtol=1e-2)


# -- fit_gan on a 2-d Gaussian ---------------------------------------------------------------
MEAN = np.array([1.5, -1.0])
SCALE = np.array([[0.6, 0.0], [0.3, 0.4]])


@pytest.fixture(scope="module")
def gaussian_data():
    x = jax.random.normal(KEY, (1024, 2)) @ jnp.asarray(SCALE) + jnp.asarray(MEAN)
    return x, np.cov(np.asarray(x).T)


def _moments(prior):
    A = np.asarray(prior.params["Dense_0"]["kernel"])  # x = z A + b
    return np.asarray(prior.params["Dense_0"]["bias"]), A.T @ A


GAUSSIAN_FITS = {
    "ns": dict(steps=1500, learning_rate=5e-3),
    "wgan-gp": dict(steps=5000, learning_rate=1e-2, ema_decay=0.99),
}


@pytest.mark.parametrize(
    "loss",
    ["ns", pytest.param("wgan-gp", marks=pytest.mark.slow)],  # wgan-gp: 5,000 steps
)
def test_fit_gan_learns_a_gaussian(gaussian_data, loss):
    x, cov = gaussian_data
    prior, (critic, critic_params), result = nh.train.fit_gan(
        x, loss=loss, key=jax.random.key(1), generator=nh.nn.MLP(hidden=(), out_dim=2),
        critic_hidden=(32, 32), batch_size=256, optimizer="adam", progress=False,
        return_result=True, **GAUSSIAN_FITS[loss],
    )  # fmt: skip
    assert isinstance(prior, nh.distributions.GeneratorPrior) and prior.event_shape == (2,)
    mean, fitted_cov = _moments(prior)
    assert np.max(np.abs(mean - np.asarray(x).mean(0))) < 0.1, mean
    assert np.max(np.abs(fitted_cov - cov)) < 0.08, (fitted_cov, cov)
    assert (
        np.all(np.isfinite(result.history)) and len(result.history) == GAUSSIAN_FITS[loss]["steps"]
    )
    # negative control: the untrained generator fails the same check
    start = nh.nn.MLP(hidden=(), out_dim=2).init(jax.random.key(5), jnp.zeros((1, 2)))["params"]
    mean0, cov0 = _moments(prior.with_params(start))
    assert np.max(np.abs(mean0 - MEAN)) > 0.5 or np.max(np.abs(cov0 - cov)) > 0.2


@pytest.mark.slow  # the clipping itself: test_gan_optimizer_..._clips_the_critic
def test_fit_wgan_keeps_the_critic_in_the_clipping_box(gaussian_data):
    x, _ = gaussian_data
    _, (_, critic_params), _ = nh.train.fit_gan(
        x, loss="wgan", key=KEY, hidden=(8,), steps=20, clip_value=0.05, progress=False,
        steps_per_dispatch=10, return_result=True,
    )  # fmt: skip
    leaves = np.concatenate([np.ravel(w) for w in jax.tree.leaves(critic_params)])
    assert np.max(np.abs(leaves)) <= 0.05 + 1e-7
    assert np.max(np.abs(leaves)) == pytest.approx(0.05)  # the bound is active


@pytest.mark.slow
def test_fit_gan_resumes_from_a_checkpoint_exactly(tmp_path, gaussian_data):
    """40 steps at once == 20 steps, checkpoint, 20 more (the n_critic counter and both
    players' Adam states are in the checkpoint)."""
    x = gaussian_data[0][:64]
    kw = dict(key=KEY, hidden=(8,), progress=False, steps_per_dispatch=10, batch_size=16)
    full = nh.train.fit_gan(x, steps=40, **kw)
    nh.train.fit_gan(x, steps=20, checkpoint_dir=tmp_path, **kw)
    resumed = nh.train.fit_gan(x, steps=40, checkpoint_dir=tmp_path, **kw)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # negative control: stopping at 20 steps is not the 40-step generator
    half = nh.train.fit_gan(x, steps=20, **kw)
    assert not np.allclose(half.params["Dense_0"]["bias"], full.params["Dense_0"]["bias"])


# -- GeneratorPrior ----------------------------------------------------------------------------
def _chi2_normal_pvalue(values, bins=20):
    edges = scipy.stats.norm.ppf(np.linspace(0, 1, bins + 1))
    counts = np.histogram(np.clip(values, -1e9, 1e9), np.clip(edges, -1e9, 1e9))[0]
    expected = len(values) / bins
    return scipy.stats.chi2.sf(np.sum((counts - expected) ** 2 / expected), bins - 1)


def test_identity_generator_samples_are_standard_normal():
    identity = _linear_generator(np.eye(3), np.zeros(3))
    x = np.asarray(identity.sample(jax.random.key(4), (20_000,)))
    assert x.shape == (20_000, 3)
    for j in range(3):
        assert _chi2_normal_pvalue(x[:, j]) > 1e-3
    np.testing.assert_allclose(np.cov(x.T), np.eye(3), atol=0.05)
    # negative control: a generator 10 % too wide fails the chi-square test
    wide = np.asarray(_linear_generator(1.1 * np.eye(3), np.zeros(3)).sample(KEY, (20_000,)))
    assert _chi2_normal_pvalue(wide[:, 0]) < 1e-3


def test_generator_prior_shapes_pytree_and_jit():
    prior = _linear_generator(np.ones((4, 2)), np.zeros(4))
    assert prior.batch_shape == () and prior.event_shape == (4,) and prior.latent_dim == 2
    assert prior.sample(KEY).shape == (4,)
    assert prior.sample(KEY, (3, 5)).shape == (3, 5, 4)
    assert prior.generate(jnp.zeros((2, 6, 2))).shape == (2, 6, 4)
    assert prior.support.event_dim == 1 and prior.has_rsample
    leaves = jax.tree.leaves(prior)
    assert len(leaves) == 2  # the params are the data, the module is static
    traces = []

    @jax.jit
    def draw(p, key):
        traces.append(1)
        return p.sample(key, (7,))

    a = draw(prior, KEY)
    b = draw(prior.with_params(jax.tree.map(lambda w: 2 * w, prior.params)), KEY)
    assert len(traces) == 1  # new params: no recompilation
    np.testing.assert_allclose(b, 2 * a, rtol=1e-6)
    stacked = jax.tree.map(lambda w: jnp.stack([w, -w]), prior.params)
    many = jax.vmap(lambda p: prior.with_params(p).sample(KEY, (3,)))(stacked)
    np.testing.assert_allclose(many[1], -many[0], rtol=1e-6)


def test_generator_prior_saves_and_loads(tmp_path):
    prior = _linear_generator(np.arange(6.0).reshape(3, 2), np.ones(3))
    nh.save(tmp_path / "g", prior)
    back = nh.load(tmp_path / "g")
    assert isinstance(back, nh.distributions.GeneratorPrior) and back.latent_dim == 2
    np.testing.assert_allclose(back.sample(KEY, (4,)), prior.sample(KEY, (4,)))


def test_log_prob_raises_and_points_to_the_latent_form():
    prior = _linear_generator(np.eye(2), np.zeros(2))
    with pytest.raises(GeneratorDensityError, match="latent_model"):
        prior.log_prob(jnp.zeros(2))
    assert issubclass(GeneratorDensityError, NotImplementedError)

    def model():
        numpyro.sample("x", prior)

    # NumPyro's own MCMC meets the same error when the prior is used as a plain site
    with pytest.raises(GeneratorDensityError, match="no tractable density"):
        numpyro.infer.util.log_density(numpyro.handlers.seed(model, KEY), (), {}, {})


# the conjugate posterior of z for a linear generator and a Gaussian observation
A_LIN = np.array([[1.0, 0.5], [-0.3, 0.8], [0.6, -0.4]])
B_LIN = np.array([0.2, -0.1, 0.4])
S_OBS = 0.5
Y_OBS = np.array([1.2, 0.3, -0.5])


def _conjugate_posterior():
    precision = np.eye(2) + A_LIN.T @ A_LIN / S_OBS**2
    cov = np.linalg.inv(precision)
    return cov @ A_LIN.T @ (Y_OBS - B_LIN) / S_OBS**2, cov


def test_latent_model_under_run_nuts_gives_the_conjugate_posterior():
    prior = _linear_generator(A_LIN, B_LIN)

    def model(y):
        x = prior.latent_model("x")
        numpyro.sample("y", dist.Normal(x, S_OBS).to_event(1), obs=y)

    idata = nh.infer.run_nuts(
        model, jnp.asarray(Y_OBS), num_warmup=300, num_samples=1000, num_chains=2, key=KEY,
        progress=False,
    )  # fmt: skip
    z = np.asarray(idata.posterior["x_latent"]).reshape(-1, 2)
    x = np.asarray(idata.posterior["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x, z @ A_LIN.T + B_LIN, rtol=1e-4, atol=1e-5)
    mean, cov = _conjugate_posterior()
    se = np.sqrt(np.diag(cov) / 400)  # >= 400 effective draws
    assert np.all(np.abs(z.mean(0) - mean) < 4 * se), (z.mean(0), mean)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.25 * np.max(np.diag(cov)))
    # negative control: the prior mean (0) is not the posterior mean
    assert np.any(np.abs(z.mean(0)) > 10 * se)


def test_generator_reparam_is_the_latent_form():
    prior = _linear_generator(A_LIN, B_LIN)

    def model():
        with numpyro.plate("rows", 4):
            numpyro.sample("x", prior)

    reparam = numpyro.handlers.reparam(model, config={"x": nh.distributions.GeneratorReparam()})
    trace = numpyro.handlers.trace(numpyro.handlers.seed(reparam, KEY)).get_trace()
    assert trace["x_latent"]["type"] == "sample" and trace["x_latent"]["value"].shape == (4, 2)
    assert trace["x"]["type"] == "deterministic"
    np.testing.assert_allclose(
        trace["x"]["value"], trace["x_latent"]["value"] @ A_LIN.T + B_LIN, rtol=1e-5
    )
    log_joint, _ = numpyro.infer.util.log_density(reparam, (), {}, {"x_latent": jnp.zeros((4, 2))})
    assert float(log_joint) == pytest.approx(-4 * np.log(2 * np.pi))  # 4 rows of N(0, I_2) at 0


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(loss="lsgan"), ValueError, "^loss: expected one of"),
        (dict(n_critic=0), ValueError, "^n_critic: expected a positive integer"),
        (dict(latent_dim=0), ValueError, "^latent_dim: expected a positive integer"),
        (dict(gp_weight=-1.0), ValueError, "^gp_weight: expected a positive"),
        (dict(clip_value=0.0), ValueError, "^clip_value: expected a positive"),
        (dict(critic_learning_rate=-1.0), ValueError, "^critic_learning_rate: "),
        (dict(generator=lambda p, z: z), TypeError, "^generator: expected a flax.linen module"),
        (dict(generator=nh.nn.MLP(hidden=(4,), out_dim=3)), ValueError,
         r"^generator: expected an output of shape \(2, 2\)"),
        (dict(critic=nh.nn.MLP(hidden=(4,), out_dim=2)), ValueError,
         "^critic: expected one value per row"),
    ],
)  # fmt: skip
def test_fit_gan_bad_arguments_fail_early_naming_them(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        nh.train.fit_gan(jnp.ones((8, 2)), key=KEY, steps=2, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [(np.ones(8), r"^data: expected an array of shape \(n, d\)"), (np.ones((1, 2)), "^data: ")],
)
def test_fit_gan_bad_data_fails_early_naming_data(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        nh.train.fit_gan(data, key=KEY, steps=2)


def test_generator_prior_bad_arguments():
    module = nh.nn.MLP(hidden=(), out_dim=2)
    params = module.init(KEY, jnp.zeros((1, 3)))["params"]
    with pytest.raises(ValueError, match="^latent_dim: expected the latent size"):
        nh.distributions.GeneratorPrior(module, params, 2)
    with pytest.raises(ValueError, match="^latent_dim: expected a positive integer"):
        nh.distributions.GeneratorPrior(module, params, 0)
    with pytest.raises(TypeError, match="^generator: expected a flax.linen module"):
        nh.distributions.GeneratorPrior(lambda p, z: z, params, 3)
    prior = nh.distributions.GeneratorPrior(module, params, 3)
    with pytest.raises(ValueError, match=r"^z: expected an array of shape \(\.\.\., 3\)"):
        prior.generate(jnp.zeros((4, 2)))


# -- float64 -----------------------------------------------------------------------------------
@pytest.mark.x64
def test_objectives_and_prior_in_the_leg_precision():
    dtype = jnp.result_type(float)  # float64 in the x64 leg
    prior = _linear_generator(np.eye(2, dtype=dtype), np.zeros(2, dtype=dtype))
    assert prior.sample(KEY, (5,)).dtype == dtype
    real = jnp.linspace(-1.0, 1.0, 6, dtype=dtype)[:, None]
    fake = real + 0.5
    params = {"a": jnp.asarray(-1.0, dtype), "b": jnp.asarray(0.5, dtype)}
    gp = gradient_penalty(_linear_critic, params, real, fake, KEY)
    assert gp.dtype == dtype and float(gp) == pytest.approx(0.0, abs=1e-12)  # |slope| = 1
    w = wasserstein_critic_loss(_linear_critic, params, real, fake)
    assert w.dtype == dtype and float(w) == pytest.approx(-0.5, rel=1e-12)


# -- the example -------------------------------------------------------------------------------
@pytest.mark.slow
def test_compressed_sensing_example_smoke(tmp_path):
    """``examples/compressed_sensing.py --smoke --with-hgf`` end to end (~40 s: fits and NUTS
    compiles)."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "compressed_sensing.py"
    spec = importlib.util.spec_from_file_location("compressed_sensing", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    png = example.main(["--smoke", "--with-hgf", "--out", str(tmp_path)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["rmse_mean"]) == [
        "gaussian m=16", "gaussian m=32", "generator m=16", "generator m=32",
        "generator range (best z)", "hgf m=16", "hgf m=32",
    ]  # fmt: skip
    assert all(np.isfinite(v) for v in summary["rmse_mean"].values())
    assert isinstance(nh.load(tmp_path / "models" / "generator"), nh.distributions.GeneratorPrior)
