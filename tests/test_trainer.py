"""The trainer core: numbers against closed forms, determinism, failure handling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_hgf.train import NonFiniteLossError, Trainer


def _least_squares_loss(params, batch, key):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


@pytest.fixture(scope="module")
def regression_data():
    kx, ke = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (400, 3))
    y = x @ jnp.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * jax.random.normal(ke, (400,))
    return x, y


@pytest.fixture(scope="module")
def regression_trainer():
    schedule = optax.cosine_decay_schedule(0.05, 3000)
    return Trainer(_least_squares_loss, optax.adam(schedule), batch_size=64, progress=False)


def _init():
    return {"w": jnp.zeros(3), "b": jnp.zeros(())}


def test_trainer_reaches_least_squares_solution(regression_data, regression_trainer):
    x, y = regression_data
    result = regression_trainer.fit(_init(), (x, y), 3000, jax.random.key(1))
    design = np.column_stack([np.asarray(x), np.ones(len(x))])
    coef = np.linalg.lstsq(design, np.asarray(y), rcond=None)[0]
    np.testing.assert_allclose(result.params["w"], coef[:3], atol=0.02)
    np.testing.assert_allclose(result.params["b"], coef[3], atol=0.02)
    assert result.history.shape == (3000,)
    assert result.history[-100:].mean() < 0.2 * result.history[:10].mean()


def test_same_key_same_params_and_dispatch_size_is_invisible(regression_data):
    def run(key, per_dispatch):
        trainer = Trainer(
            _least_squares_loss,
            optax.adam(1e-2),
            batch_size=16,
            steps_per_dispatch=per_dispatch,
            progress=False,
        )
        return trainer.fit(_init(), regression_data, 130, key)

    a, b = run(jax.random.key(3), 50), run(jax.random.key(3), 50)
    c = run(jax.random.key(3), 13)
    d = run(jax.random.key(4), 50)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    np.testing.assert_allclose(a.params["w"], c.params["w"], rtol=1e-6)
    np.testing.assert_allclose(a.history, c.history, rtol=1e-6)
    assert not np.allclose(a.params["w"], d.params["w"])
    assert int(c.state.step) == 130


def _linear_loss(params, batch, key):
    return jnp.sum(params["p"] * 2.0)  # constant gradient 2


def test_ema_matches_closed_form_recursion():
    lr, decay, steps = 0.1, 0.9, 25
    trainer = Trainer(_linear_loss, optax.sgd(lr), batch_size=1, ema_decay=decay, progress=False)
    result = trainer.fit({"p": jnp.array(1.0)}, jnp.zeros((4, 1)), steps, jax.random.key(0))
    p, ema = 1.0, 1.0
    for _ in range(steps):
        p -= lr * 2.0
        ema = decay * ema + (1 - decay) * p
    np.testing.assert_allclose(result.state.params["p"], p, rtol=1e-5)
    np.testing.assert_allclose(result.params["p"], ema, rtol=1e-5)


def test_gradient_clipping_bounds_each_step():
    loss = lambda params, batch, key: jnp.sum(params["p"] * 1000.0)
    trainer = Trainer(loss, optax.sgd(1.0), batch_size=1, clip_norm=0.5, progress=False)
    result = trainer.fit({"p": jnp.array([0.0])}, jnp.zeros((2, 1)), 10, jax.random.key(0))
    np.testing.assert_allclose(result.params["p"], [-5.0], rtol=1e-6)


def test_non_finite_loss_names_step_and_keeps_last_good_params():
    # loss is finite while s <= 3; sgd moves s by +0.2 per step from 0 (gradient -20 * 0.01)
    loss = lambda params, batch, key: jnp.where(
        params["s"] > 3.0, jnp.nan, (params["s"] - 10.0) ** 2
    )
    trainer = Trainer(loss, optax.sgd(0.01), batch_size=1, steps_per_dispatch=7, progress=False)
    with pytest.raises(NonFiniteLossError, match="step 18") as info:
        trainer.fit({"s": jnp.array(0.0)}, jnp.zeros((4, 1)), 100, jax.random.key(0))
    err = info.value
    assert err.step == 18
    # the last state whose loss was finite: step 17 (s_18 > 3 is the state that diverged)
    assert int(err.last_good_state.step) == 17
    assert 2.8 < float(err.last_good_state.params["s"]) <= 3.0
    assert np.isfinite(loss(err.last_good_state.params, None, None))
    assert np.all(np.isfinite(err.history)) and err.history.shape == (18,)


def test_validation_early_stopping_returns_best_params():
    # s walks 0 -> 10; validation (s - 2)^2 is best near s = 2, then rises.
    loss = lambda params, batch, key: -params["s"]
    trainer = Trainer(loss, optax.sgd(0.1), batch_size=1, steps_per_dispatch=100, progress=False)
    result = trainer.fit(
        {"s": jnp.array(0.0)},
        jnp.zeros((2, 1)),
        100,
        jax.random.key(0),
        validation_fn=lambda p: float((p["s"] - 2.0) ** 2),
        validate_every=5,
        patience=3,
    )
    assert result.stopped_early
    np.testing.assert_allclose(result.params["s"], 2.0, atol=1e-5)
    assert int(result.state.step) == 35  # best at step 20, three worse checks after
    assert [s for s, _ in result.validation] == [5, 10, 15, 20, 25, 30, 35]


def test_progress_bar_can_be_silenced(capsys):
    loss = lambda params, batch, key: jnp.sum(params["p"] ** 2)
    data = jnp.zeros((2, 1))
    Trainer(loss, 0.1, batch_size=1, progress=False).fit({"p": 1.0}, data, 5, jax.random.key(0))
    assert capsys.readouterr().err == ""
    Trainer(loss, 0.1, batch_size=1, progress=True).fit({"p": 1.0}, data, 5, jax.random.key(0))
    assert "training" in capsys.readouterr().err


def test_bad_input_is_named():
    loss = lambda params, batch, key: jnp.sum(params["p"] ** 2)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got 0"):
        Trainer(loss, 0.1, batch_size=0)
    with pytest.raises(ValueError, match="ema_decay"):
        Trainer(loss, 0.1, ema_decay=1.5)
    with pytest.raises(TypeError, match="optimizer"):
        Trainer(loss, "adam")
    trainer = Trainer(loss, 0.1, batch_size=1, progress=False)
    bad = jnp.array([[0.0], [jnp.nan]])
    with pytest.raises(ValueError, match="data: expected finite values, got 1 non-finite"):
        trainer.fit({"p": 1.0}, bad, 5, jax.random.key(0))
    with pytest.raises(ValueError, match="data: expected arrays sharing a leading"):
        trainer.fit({"p": 1.0}, (jnp.zeros((3, 1)), jnp.zeros((4, 1))), 5, jax.random.key(0))
    with pytest.raises(ValueError, match="patience: early stopping needs a validation_fn"):
        trainer.fit({"p": 1.0}, jnp.zeros((3, 1)), 5, jax.random.key(0), patience=2)


def test_auxiliary_state_is_carried_between_steps_and_frozen_on_failure():
    # aux counts the steps taken and records the last batch mean; the loss diverges at s > 3
    def loss(params, batch, key, aux):
        value = jnp.where(params["s"] > 3.0, jnp.nan, (params["s"] - 10.0) ** 2)
        return value, {"count": aux["count"] + 1, "last": jnp.mean(batch)}

    trainer = Trainer(loss, optax.sgd(0.01), batch_size=2, has_aux=True, progress=False)
    aux0 = {"count": jnp.array(0), "last": jnp.array(0.0)}
    data = jnp.arange(6.0)[:, None]
    result = trainer.fit({"s": jnp.array(0.0)}, data, 10, jax.random.key(0), aux=aux0)
    assert int(result.state.aux["count"]) == 10
    assert 0.0 <= float(result.state.aux["last"]) <= 5.0
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit({"s": jnp.array(0.0)}, data, 100, jax.random.key(0), aux=aux0)
    # the last state with a finite loss is step 17's, with the aux of its 17 steps
    assert info.value.step == 18
    assert int(info.value.last_good_state.aux["count"]) == int(info.value.last_good_state.step)
    assert int(info.value.last_good_state.step) == 17
    with pytest.raises(ValueError, match="aux: a loss with has_aux=True needs an initial"):
        trainer.fit({"s": jnp.array(0.0)}, data, 5, jax.random.key(0))
