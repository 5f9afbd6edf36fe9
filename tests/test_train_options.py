"""Every fit_* takes the same trainer options, checks them before training, and validates.

* The signatures: every ``fit_*`` (the 14 of ``nh.train`` and ``nh.models``) has ``key``,
  ``options=None`` and ``**train_options: Unpack[TrainKeywords]``, whose keys are exactly the
  fields of ``TrainOptions``, and no parameter of its own shadows a trainer option.
* Bad options fail before anything is traced, naming the option.
* Validation and early stopping: every fit_* given held-out rows returns the params with the
  best validated value (recomputed here where the criterion is the training loss), records
  a validation history, and stops early with a patience.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
import typing

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import numpyro_hgf as nh
from numpyro_hgf.models import nlme, ppca, vae
from numpyro_hgf.models.svi import fit_svi
from numpyro_hgf.train.options import RECOMMENDED, TrainKeywords, TrainOptions, resolve_options

KEY = jax.random.key(0)
FITS = {
    "fit_flow": nh.train.fit_flow,
    "fit_velocity": nh.train.fit_velocity,
    "fit_diffusion": nh.train.fit_diffusion,
    "fit_score": nh.train.fit_score,
    "fit_hsm": nh.train.fit_hsm,
    "fit_rbm": nh.train.fit_rbm,
    "fit_boltzmann_exact": nh.train.fit_boltzmann_exact,
    "fit_dbm": nh.train.fit_dbm,
    "fit_hamiltonian_flow": nh.train.fit_hamiltonian_flow,
    "fit_images": nh.train.fit_images,
    "fit_gan": nh.train.fit_gan,
    "models.fit_svi": fit_svi,
    "ppca.fit_svi": ppca.fit_svi,
    "vae.fit": vae.fit,
    "nlme.fit_svi": nlme.fit_svi,
}
FIELDS = [f.name for f in dataclasses.fields(TrainOptions)]


# -- one set of names and defaults ------------------------------------------------------------
def test_train_keywords_are_the_fields_of_train_options():
    assert list(typing.get_type_hints(TrainKeywords)) == FIELDS
    assert len(FIELDS) >= 18


@pytest.mark.parametrize("name", FITS)
def test_every_fit_takes_the_same_trainer_options(name):
    params = inspect.signature(FITS[name]).parameters
    assert params["key"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["options"].default is None
    var = [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert len(var) == 1 and var[0].annotation == "Unpack[TrainKeywords]", var
    shadowing = sorted(set(params) & set(FIELDS))
    assert shadowing == [], f"{name} redefines trainer options {shadowing}"


def test_the_defaults_are_one_set():
    options = TrainOptions()
    for name in ("steps", "batch_size", "learning_rate", "optimizer", "clip_norm", "ema_decay"):
        assert getattr(options, name) is RECOMMENDED
    assert options.precision == "float32" and options.resume is True
    assert options.steps_per_dispatch == 100 and options.keep_checkpoints == 3


def test_recipe_fills_only_what_was_not_given():
    recipe = nh.train.Recipe(steps=7, batch_size=3, learning_rate=0.1, clip_norm=2.0)
    got = resolve_options(None, {"steps": 11, "clip_norm": None}, recipe)
    assert (got.steps, got.batch_size, got.learning_rate, got.clip_norm) == (11, 3, 0.1, None)
    whole = resolve_options(TrainOptions(batch_size=5), {"steps": 2}, recipe)
    assert (whole.steps, whole.batch_size) == (2, 5)


# -- bad options fail early, naming the option ------------------------------------------------
@pytest.mark.parametrize(
    ("keywords", "error", "pattern"),
    [
        ({"learning_rate": 0.0}, ValueError, "learning_rate: expected a positive"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate: expected a positive"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate: expected a positive"),
        ({"steps": 0}, ValueError, "steps: expected a positive integer"),
        ({"validate_every": 0}, ValueError, "validate_every: expected a positive integer"),
        ({"callback_every": 0}, ValueError, "callback_every: expected a positive integer"),
        ({"ema_decay": 1.0}, ValueError, r"ema_decay: expected a number in \(0, 1\)"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer: expected one of"),
        ({"optimizer": 0.01}, TypeError, "optimizer: expected"),
        ({"precision": "float16"}, ValueError, "precision: expected one of"),
        ({"patience": 3}, ValueError, "patience: early stopping needs validation rows"),
        ({"stepz": 3}, TypeError, r"stepz: not an option of this fit function"),
    ],
)
def test_bad_options_fail_before_training(keywords, error, pattern):
    data = jnp.ones((8, 2))
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        nh.train.fit_flow("planar", data, key=KEY, **keywords)
    assert time.perf_counter() - start < 5.0  # nothing was compiled


def test_bad_key_names_key():
    for bad in (None, 0, "0", np.zeros(3)):
        with pytest.raises(TypeError, match="^key: expected a jax.random key"):
            nh.train.fit_velocity(nh.paths.FlowMatchingPath(), jnp.ones((8, 2)), key=bad)


# -- validation and early stopping in every fit_* ----------------------------------------------
def _gauss(key, n, d=2):
    return jax.random.normal(key, (n, d)) * 0.5 + 1.0


def _binary(key, n, d=6):
    return (jax.random.uniform(key, (n, d)) < 0.3).astype(jnp.float32)


SMALL = dict(steps=24, validate_every=6, steps_per_dispatch=6, progress=False)


def _case(name):
    """``(call(**options) -> TrainResult)`` of a tiny fit with validation rows."""
    k1, k2 = jax.random.split(jax.random.key(1))
    x, v = _gauss(k1, 32), _gauss(k2, 16)
    b, bv = _binary(k1, 32), _binary(k2, 16)
    s, sv = 2 * _binary(k1, 32, 4) - 1, 2 * _binary(k2, 16, 4) - 1
    common = dict(SMALL, key=KEY)
    if name == "fit_flow":
        return lambda **o: nh.train.fit_flow(
            "planar", x, num_layers=1, return_result=True, validation=v, **common, **o
        )[1]
    if name == "fit_velocity":
        return lambda **o: nh.train.fit_velocity(
            nh.paths.FlowMatchingPath(), x, hidden=(8,), return_result=True, validation=v,
            **common, **o,
        )[1]  # fmt: skip
    if name == "fit_diffusion":
        return lambda **o: nh.train.fit_diffusion(
            nh.paths.VPSDE(), x, hidden=(8,), return_result=True, validation=v, **common, **o
        )[1]
    if name == "fit_score":
        return lambda **o: nh.train.fit_score(
            "sliced", x, hidden=(8,), return_result=True, validation=v, **common, **o
        )[1]
    if name == "fit_hsm":
        return lambda **o: nh.train.fit_hsm(
            x, hidden=(8,), velocity_hidden=(8,), return_result=True, validation=v,
            **common, **o,
        )[2]  # fmt: skip
    if name == "fit_rbm":
        return lambda **o: nh.train.fit_rbm(
            b, 3, return_result=True, validation=bv, batch_size=8, **common, **o
        )[1]
    if name == "fit_boltzmann_exact":
        return lambda **o: nh.train.fit_boltzmann_exact(
            s, return_result=True, validation=sv, **common, **o
        )[1]
    if name == "fit_dbm":  # warm start: the pre-training stages are not validated
        start = nh.distributions.DeepBoltzmannMachine([0.1 * jnp.ones((6, 3)), jnp.ones((3, 2))])
        return lambda **o: nh.train.fit_dbm(
            b, (3, 2), dbm=start, return_result=True, validation=bv, batch_size=8, **common, **o
        )[1]
    if name == "fit_hamiltonian_flow":
        return lambda **o: nh.train.fit_hamiltonian_flow(
            x, num_layers=1, num_steps=1, hidden=(4,), return_result=True, validation=v,
            **common, **o,
        )[1]  # fmt: skip
    if name == "fit_gan":
        return lambda **o: nh.train.fit_gan(
            x, loss="ns", hidden=(8,), return_result=True, validation=v, **common, **o
        )[2]
    if name in ("models.fit_svi", "ppca.fit_svi"):
        return lambda **o: ppca.fit_svi(x, 1, batch_size=8, validation=v, **common, **o)[1].result
    if name == "vae.fit":
        return lambda **o: (
            vae.fit(x, latent_dim=1, hidden=(4,), batch_size=8, validation=v, **common, **o)[
                1
            ].result
        )
    raise KeyError(name)


NON_IMAGE = [n for n in FITS if n not in ("fit_images", "nlme.fit_svi")]


@pytest.mark.parametrize("name", NON_IMAGE)
def test_validation_keeps_the_best_params_and_patience_stops(name):
    run = _case(name)
    result = run()
    steps = [s for s, _ in result.validation]
    assert steps == [6, 12, 18, 24], steps
    values = np.array([value for _, value in result.validation])
    assert np.all(np.isfinite(values))
    assert not result.stopped_early
    # with patience 1 the fit stops at the first validation that does not improve, unless
    # every validation improves (then it runs all steps): both are checked
    short = run(patience=1)
    first_worse = next((i for i in range(1, 4) if values[i] >= values[:i].min()), None)
    if first_worse is None:
        assert not short.stopped_early and len(short.validation) == 4
    else:
        assert short.stopped_early and len(short.validation) == first_worse + 1


def test_fit_flow_returns_the_params_of_the_lowest_held_out_nll():
    k1, k2 = jax.random.split(jax.random.key(1))
    x, v = _gauss(k1, 32), _gauss(k2, 16)
    # a large learning rate makes the held-out NLL go up again after its minimum
    flow, result = nh.train.fit_flow(
        "planar", x, num_layers=1, key=KEY, validation=v, return_result=True,
        learning_rate=0.5, optimizer="sgd", **SMALL,
    )  # fmt: skip
    nll = float(-jnp.mean(flow.log_prob(v)))
    best = min(value for _, value in result.validation)
    assert math.isclose(nll, best, rel_tol=1e-5, abs_tol=1e-5)


@pytest.mark.slow
def test_nlme_validation_on_held_out_subjects():
    data = nlme.theophylline_data()
    model, init = nlme.theophylline_model()
    train, held = (jax.tree.map(lambda a, s=s: a[s], data) for s in (slice(0, 9), slice(9, 12)))
    res = nlme.fit_svi(
        model, train, init, guide="amortized", num_eval_particles=8, validation=held, **SMALL,
        key=KEY,
    )  # fmt: skip
    assert [s for s, _ in res.validation] == [6, 12, 18, 24]
    assert all(np.isfinite(value) for _, value in res.validation)
    with pytest.raises(ValueError, match="validation: held-out subjects need guide='amortized'"):
        nlme.fit_svi(model, train, init, guide="mvn", validation=held, key=KEY, **SMALL)


@pytest.mark.slow
def test_fit_images_validation():
    k1, k2 = jax.random.split(jax.random.key(2))
    images = jnp.tanh(jax.random.normal(k1, (16, 4, 4, 1)))
    held = jnp.tanh(jax.random.normal(k2, (8, 4, 4, 1)))
    _, result = nh.train.fit_images(
        "flow_matching", images, channels=(4,), key=KEY, validation=held, return_result=True,
        **SMALL,
    )  # fmt: skip
    assert [s for s, _ in result.validation] == [6, 12, 18, 24]


def test_an_optax_optimizer_replaces_the_recipe():
    x = _gauss(jax.random.key(3), 16)
    frozen = nh.train.fit_flow(
        "planar", x, num_layers=1, key=KEY, steps=5, progress=False, optimizer=optax.sgd(0.0)
    )
    init_key = jax.random.split(KEY)[0]  # fit_flow builds the flow with this key
    start = nh.flows.build_flow("planar", 2, num_layers=1, hidden=(64, 64), key=init_key)
    for a, b in zip(jax.tree.leaves(frozen.params), jax.tree.leaves(start.params), strict=True):
        np.testing.assert_array_equal(a, b)
    moved = nh.train.fit_flow("planar", x, num_layers=1, key=KEY, steps=5, progress=False)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(moved.params), jax.tree.leaves(start.params), strict=True)
    )


# -- the float64 leg: every fit_* runs under jax_enable_x64 and trains in float64 -------------
def _float_leaves(tree):
    return [
        leaf
        for leaf in jax.tree.leaves(tree)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
    ]


@pytest.mark.x64
@pytest.mark.parametrize("name", NON_IMAGE)
def test_every_fit_trains_in_the_leg_precision(name):
    """Runs in the x64 leg only (the float32 leg runs the same fits above).  Before the fix
    every trainer failed under x64 (``scan`` carry int32 vs int64 in the dispatch)."""
    if not jax.config.jax_enable_x64:
        pytest.skip("the x64 leg (pytest --x64) runs this")
    result = _case(name)()
    leaves = _float_leaves(result.params)
    assert leaves and all(leaf.dtype == jnp.float64 for leaf in leaves), {
        str(leaf.dtype) for leaf in leaves
    }
    assert np.all(np.isfinite(result.history)) and len(result.validation) == 4


@pytest.mark.x64
def test_nlme_fit_svi_trains_in_the_leg_precision():
    if not jax.config.jax_enable_x64:
        pytest.skip("the x64 leg (pytest --x64) runs this")
    data = nlme.theophylline_data()
    model, init = nlme.theophylline_model()
    res = nlme.fit_svi(model, data, init, guide="mvn", key=KEY, **SMALL)
    leaves = _float_leaves(res.params)
    assert leaves and all(leaf.dtype == jnp.float64 for leaf in leaves)
    assert np.all(np.isfinite(res.losses))


# -- bad data and trainer-specific options fail before anything is traced ---------------------
BAD_DATA = [
    (np.zeros((0, 2), np.float32), ValueError, "data: expected at least 1 row"),
    (np.zeros((8, 0), np.float32), ValueError, "data: expected a non-empty event shape"),
    (np.array([["a", "b"]] * 8), TypeError, "data: expected a floating-point array"),
    (np.ones((8, 2)) * 1j, TypeError, "data: expected a floating-point array"),
    (np.ones((8, 2), int), TypeError, "data: expected a floating-point array"),
]


@pytest.mark.parametrize(("data", "error", "pattern"), BAD_DATA)
def test_bad_data_fails_early_naming_data(data, error, pattern):
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        nh.train.fit_flow("realnvp", data, key=KEY, steps=2, progress=False)
    with pytest.raises(error, match=pattern):
        nh.train.fit_velocity(nh.paths.FlowMatchingPath(), data, key=KEY, steps=2)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: nh.train.fit_rbm(np.array([["a"]] * 8), 2, key=KEY), TypeError, "^data: "),
        (lambda: nh.train.fit_rbm(np.ones((8, 2)) * 1j, 2, key=KEY), TypeError, "^data: "),
        (lambda: ppca.fit_svi(np.array([["a", "b"]] * 8), 1, key=KEY), TypeError, "^y: "),
        (lambda: vae.fit(np.ones((8, 2)) * 1j, latent_dim=1, key=KEY), TypeError, "^x: "),
        (
            lambda: nh.train.fit_rbm(np.ones((8, 2)), 2, num_gibbs_steps=0, key=KEY),
            ValueError,
            "num_gibbs_steps: expected a positive integer",
        ),
        (
            lambda: nh.train.fit_hsm(jnp.ones((8, 2)), velocity_learning_rate=-1.0, key=KEY),
            ValueError,
            "^velocity_learning_rate: ",
        ),
        (
            lambda: nh.train.fit_diffusion(
                nh.paths.VPSDE(), jnp.ones((8, 2)), sampler="euler", key=KEY
            ),
            ValueError,
            "^sampler: expected one of",
        ),  # fmt: skip
        (
            lambda: nh.train.fit_images("oscillation", jnp.zeros((8, 7, 7, 1)), key=KEY),
            ValueError,
            "^images: expected images whose height and width are multiples of 2",
        ),
    ],
)
def test_trainer_specific_bad_input_fails_early_naming_the_argument(call, error, pattern):
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        call()
    assert time.perf_counter() - start < 5.0  # nothing was compiled
