"""Training Boltzmann machines on the :class:`~numpyro_hgf.train.Trainer` core.

* :func:`fit_rbm` -- CD-k (Hinton 2002) or persistent CD (Tieleman 2008) for a
  :class:`~numpyro_hgf.distributions.BernoulliRBM`, with the surrogate loss of
  :func:`numpyro_hgf.objectives.contrastive.contrastive_divergence`.
* :func:`fit_boltzmann_exact` -- exact maximum likelihood for a small fully visible
  :class:`~numpyro_hgf.distributions.BoltzmannMachine` (``d <= 20``; model moments by
  enumeration).

Persistent chains (PCD) are the trainer's auxiliary state: ``Trainer(has_aux=True)``
carries them from step to step inside the jitted ``lax.scan``, so they are checkpointed,
resumed and frozen on a non-finite loss together with the weights.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.distributions.boltzmann import (
    BoltzmannMachine,
    bm_log_normalizer_exact,
    check_spins,
)
from numpyro_hgf.distributions.rbm import (
    EXACT_MAX_UNITS,
    BernoulliRBM,
    check_binary,
    rbm_free_energy,
    rbm_log_normalizer_exact,
)
from numpyro_hgf.objectives.contrastive import contrastive_divergence
from numpyro_hgf.train.trainer import Trainer, TrainResult

__all__ = ["fit_rbm", "fit_boltzmann_exact", "rbm_cd_loss", "rbm_pcd_loss"]


def _weight_decay_term(rbm_params, weight_decay: float):
    if not weight_decay:
        return 0.0
    return 0.5 * weight_decay * jnp.sum(rbm_params["W"] ** 2)


def rbm_cd_loss(k: int = 1, weight_decay: float = 0.0):
    """``loss_fn(rbm_params, batch, key)`` for CD-k on the trainer core."""

    def loss_fn(params, batch, key):
        loss, _ = contrastive_divergence(params, batch, key, k=k)
        return loss + _weight_decay_term(params, weight_decay)

    return loss_fn


def rbm_pcd_loss(k: int = 1, weight_decay: float = 0.0):
    """``loss_fn(rbm_params, batch, key, chains) -> (loss, new_chains)`` for persistent CD-k
    (Tieleman 2008): the negative phase continues the persistent ``chains``."""

    def loss_fn(params, batch, key, chains):
        loss, v_model = contrastive_divergence(params, batch, key, k=k, v_init=chains)
        return loss + _weight_decay_term(params, weight_decay), jax.lax.stop_gradient(v_model)

    return loss_fn


def _check_rbm_data(name: str, data, num_visible: int | None = None):
    data = jnp.asarray(data)
    if data.ndim != 2:
        hint = (
            "; flatten images first, e.g. x.reshape(len(x), -1) -> "
            f"(n, {int(np.prod(data.shape[1:]))})"
            if data.ndim > 2
            else ""
        )
        raise ValueError(f"{name}: expected an array of shape (n, V), got shape {data.shape}{hint}")
    if data.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one example, got shape {data.shape}")
    if num_visible is not None and data.shape[1] != num_visible:
        raise ValueError(
            f"{name}: expected {num_visible} visible units per example, got shape {data.shape}"
        )
    check_binary(name, data)
    return data.astype(jnp.float32)


def _make_optimizer(optimizer, learning_rate, momentum):
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    if optimizer == "sgd":
        return optax.sgd(learning_rate, momentum=momentum)
    return optax.adam(learning_rate)


def fit_rbm(
    data,
    num_hidden: int,
    *,
    method: str = "cd",
    k: int = 1,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 100,
    learning_rate: float = 0.05,
    optimizer="sgd",
    momentum: float | None = None,
    weight_decay: float = 0.0,
    key=None,
    init_scale: float = 0.01,
    init_visible_bias: str = "data",
    num_persistent: int | None = None,
    rbm: BernoulliRBM | None = None,
    num_gibbs_steps: int = 1000,
    validation_data=None,
    validate_every: int | None = None,
    patience: int | None = None,
    steps_per_dispatch: int = 100,
    progress: bool | None = None,
    return_result: bool = False,
):
    """Fit a :class:`~numpyro_hgf.distributions.BernoulliRBM` by CD-k or persistent CD.

    Args:
        data: ``(n, V)`` binary data (flatten images first).
        num_hidden: number of hidden units ``H`` (positive).
        method: ``"cd"`` (chains restart at the minibatch, Hinton 2002) or ``"pcd"``
            (persistent chains carried across steps, Tieleman 2008; they live in the
            train state -- see the module docstring).
        k: Gibbs sweeps per negative phase.
        steps, epochs: optimizer steps, or epochs of ``ceil(n / batch_size)`` steps
            (give at most one; default 10 epochs).
        batch_size: minibatch size (drawn with replacement by the trainer core).
        learning_rate: step size (positive).
        optimizer: ``"sgd"`` (the classical rule: ``θ += lr * (<·>_data - <·>_model)``;
            ``momentum`` optional), ``"adam"``, or any optax transformation.
        weight_decay: L2 penalty ``½ λ ||W||²`` added to the surrogate.
        key: ``jax.random`` key (required): initialisation, minibatches, chains.
        init_scale: ``W ~ N(0, init_scale²)``.
        init_visible_bias: ``"data"`` (the data log-odds, Hinton's practical guide; the
            initial model is then close to the independent-Bernoulli baseline) or
            ``"zero"``.
        num_persistent: number of persistent chains (PCD; default ``batch_size``),
            initialised at random training examples.
        rbm: warm start from this RBM (its ``H`` must equal ``num_hidden``).
        num_gibbs_steps: the returned RBM's sampling sweeps.
        validation_data: optional ``(m, V)`` binary data; its exact mean NLL (needs
            ``min(V, H) <= 20``) is tracked every ``validate_every`` steps, and with
            ``patience`` training stops early and returns the best params.
        steps_per_dispatch, progress: passed to :class:`~numpyro_hgf.train.Trainer`.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult` (its
            ``history`` is the CD surrogate per step, not a likelihood).

    Returns:
        The trained ``BernoulliRBM`` (saveable), or ``(rbm, result)``.
    """
    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    method = check_choice("method", method, ("cd", "pcd"))
    num_hidden = check_positive_int("num_hidden", num_hidden)
    k = check_positive_int("k", k)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    batch_size = check_positive_int("batch_size", batch_size)
    if weight_decay < 0:
        raise ValueError(f"weight_decay: expected a non-negative number, got {weight_decay}")
    if momentum is not None and not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
    check_choice("init_visible_bias", init_visible_bias, ("data", "zero"))
    init_scale = float(init_scale)
    if not np.isfinite(init_scale) or init_scale < 0:
        raise ValueError(f"init_scale: expected a non-negative number, got {init_scale}")
    data = _check_rbm_data("data", data)
    check_finite("data", data)
    n, V = data.shape
    if steps is not None and epochs is not None:
        raise ValueError(
            f"steps: expected steps or epochs, not both; got steps={steps}, epochs={epochs}"
        )
    if steps is None:
        epochs = 10 if epochs is None else check_positive_int("epochs", epochs)
        steps = epochs * math.ceil(n / batch_size)
    steps = check_positive_int("steps", steps)

    init_key, chain_key, train_key = jax.random.split(key, 3)
    if rbm is not None:
        if not isinstance(rbm, BernoulliRBM):
            raise TypeError(f"rbm: expected a BernoulliRBM, got {type(rbm).__name__}")
        if rbm.num_hidden != num_hidden or rbm.num_visible != V:
            raise ValueError(
                f"rbm: expected an RBM with V={V}, H={num_hidden}, got V={rbm.num_visible}, "
                f"H={rbm.num_hidden}"
            )
        rbm_params = jax.tree.map(jnp.asarray, rbm.params)
    else:
        if init_visible_bias == "data":
            p = jnp.clip((jnp.sum(data, axis=0) + 0.5) / (n + 1.0), 1e-3, 1 - 1e-3)
            b_v = jnp.log(p) - jnp.log1p(-p)
        else:
            b_v = jnp.zeros(V, jnp.float32)
        rbm_params = {
            "W": init_scale * jax.random.normal(init_key, (V, num_hidden), jnp.float32),
            "b_visible": b_v.astype(jnp.float32),
            "b_hidden": jnp.zeros(num_hidden, jnp.float32),
        }

    opt = _make_optimizer(optimizer, learning_rate, momentum)
    chains = None
    if method == "cd":
        loss_fn = rbm_cd_loss(k, weight_decay)
    else:
        num_persistent = check_positive_int(
            "num_persistent", batch_size if num_persistent is None else num_persistent
        )
        chains = data[jax.random.randint(chain_key, (num_persistent,), 0, n)]
        loss_fn = rbm_pcd_loss(k, weight_decay)

    validation_fn = None
    if validation_data is not None:
        if min(V, num_hidden) > EXACT_MAX_UNITS:
            raise ValueError(
                f"validation_data: tracking the exact NLL needs min(V, H) <= {EXACT_MAX_UNITS}, "
                f"got V={V}, H={num_hidden}"
            )
        val = _check_rbm_data("validation_data", validation_data, V)

        @jax.jit
        def val_nll(p):
            return jnp.mean(rbm_free_energy(p, val)) + rbm_log_normalizer_exact(p)

        validation_fn = lambda p: float(val_nll(p))

    trainer = Trainer(
        loss_fn,
        opt,
        batch_size=min(batch_size, n),
        steps_per_dispatch=min(check_positive_int("steps_per_dispatch", steps_per_dispatch), steps),
        clip_norm=None,
        progress=progress,
        description=f"fit_rbm ({method.upper()}-{k}, H={num_hidden})",
        has_aux=method == "pcd",
    )
    result: TrainResult = trainer.fit(
        rbm_params,
        data,
        steps,
        train_key,
        aux=chains,
        validation_fn=validation_fn,
        validate_every=(validate_every or trainer.steps_per_dispatch) if validation_fn else None,
        patience=patience,
    )
    trained = result.params
    out = BernoulliRBM(
        trained["W"], trained["b_visible"], trained["b_hidden"], num_gibbs_steps=num_gibbs_steps
    )
    return (out, result) if return_result else out


def fit_boltzmann_exact(
    data,
    *,
    steps: int = 1000,
    learning_rate: float = 0.05,
    l2: float = 0.0,
    key=None,
    num_gibbs_steps: int = 1000,
    progress: bool | None = None,
    return_result: bool = False,
):
    """Exact maximum likelihood for a fully visible :class:`BoltzmannMachine` (``d <= 20``).

    Maximises ``(1/n) Σ_i log p(y_i) = ½ tr(W S) + bᵀm - log Z(W, b)`` (``S``, ``m`` the
    data moments) with Adam (cosine-decayed ``learning_rate``) on the trainer core; the
    gradient ``(S - E_p[yyᵀ], m - E_p[y])`` is exact because ``log Z`` is enumerated.
    ``W`` is parametrised by its strict upper triangle, so it stays symmetric with zero
    diagonal.  The problem is concave, so the result is the MLE (up to optimisation
    tolerance); ``l2`` adds ``½ l2 ||W||²``.

    Args:
        data: ``(n, d)`` spins in ``{-1, +1}``.
        steps: optimizer steps (full-batch: each uses the exact data moments).
        learning_rate: peak Adam step size (positive).
        l2: non-negative ridge penalty on ``W``.
        key: optional ``jax.random`` key (the objective is deterministic).
        num_gibbs_steps: the returned machine's sampling sweeps.
        progress, return_result: as in :func:`fit_rbm`.
    """
    data = jnp.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data: expected an array of shape (n, d), got shape {data.shape}")
    d = data.shape[1]
    if not 1 <= d <= EXACT_MAX_UNITS:
        raise ValueError(
            f"data: exact maximum likelihood enumerates 2^d states and needs 1 <= d <= "
            f"{EXACT_MAX_UNITS}, got d={d}"
        )
    check_spins("data", data)
    steps = check_positive_int("steps", steps)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    if l2 < 0:
        raise ValueError(f"l2: expected a non-negative number, got {l2}")
    data = data.astype(jnp.float32)
    n = data.shape[0]
    S = data.T @ data / n
    m = jnp.mean(data, axis=0)
    upper = jnp.triu(jnp.ones((d, d), jnp.float32), 1)

    def to_model_params(p):
        Wu = p["W"] * upper
        return {"W": Wu + Wu.T, "b": p["b"]}

    def loss_fn(p, batch, key):
        del batch, key  # full-batch: the data enter through their moments
        mp = to_model_params(p)
        mean_ll = 0.5 * jnp.sum(mp["W"] * S) + mp["b"] @ m - bm_log_normalizer_exact(mp)
        return -mean_ll + 0.5 * l2 * jnp.sum(mp["W"] ** 2)

    init = {
        "W": jnp.zeros((d, d), jnp.float32),
        "b": jnp.arctanh(jnp.clip(m, -0.99, 0.99)),
    }
    trainer = Trainer(
        loss_fn,
        optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
        batch_size=1,
        steps_per_dispatch=min(steps, 500),
        progress=progress,
        description=f"fit_boltzmann_exact (d={d})",
    )
    result = trainer.fit(init, data, steps, jax.random.key(0) if key is None else key)
    mp = to_model_params(result.params)
    bm = BoltzmannMachine(mp["W"], mp["b"], num_gibbs_steps=num_gibbs_steps)
    return (bm, result) if return_result else bm
