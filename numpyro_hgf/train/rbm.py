"""Training Boltzmann machines on the one fit skeleton.

* :func:`fit_rbm` -- CD-k (Hinton 2002) or persistent CD (Tieleman 2008) for a
  :class:`~numpyro_hgf.distributions.BernoulliRBM`, with the surrogate losses of
  :mod:`numpyro_hgf.objectives.contrastive`.
* :func:`fit_boltzmann_exact` -- exact maximum likelihood for a small fully visible
  :class:`~numpyro_hgf.distributions.BoltzmannMachine` (``d <= 20``; model moments by
  enumeration).

Persistent chains (PCD) are the trainer's auxiliary state: ``Trainer(has_aux=True)``
carries them from step to step inside the jitted ``lax.scan``, so they are checkpointed,
resumed and frozen on a non-finite loss together with the weights.
"""

from __future__ import annotations

import math
from typing import Unpack

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    check_binary,
    check_choice,
    check_key,
    check_nonnegative_float,
    check_positive_int,
    check_spins,
    describe,
)
from numpyro_hgf.distributions.boltzmann import BoltzmannMachine
from numpyro_hgf.distributions.rbm import BernoulliRBM
from numpyro_hgf.nn.boltzmann import (
    EXACT_MAX_UNITS,
    bm_energy,
    bm_log_normalizer_exact,
    rbm_free_energy,
    rbm_log_normalizer_exact,
    rbm_pseudo_log_likelihood,
)
from numpyro_hgf.objectives.contrastive import rbm_cd_loss, rbm_pcd_loss
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.programs import ModelLoss, shared_optimizer

__all__ = ["fit_rbm", "fit_boltzmann_exact", "RBM_RECIPE", "BOLTZMANN_EXACT_RECIPE"]

#: The optimisation ``fit_rbm`` recommends (``steps``: 10 epochs unless given).
RBM_RECIPE = Recipe(batch_size=100, learning_rate=0.05, optimizer="sgd", clip_norm=None)
#: The optimisation ``fit_boltzmann_exact`` recommends (full batch).
BOLTZMANN_EXACT_RECIPE = Recipe(steps=1_000, learning_rate=0.05, clip_norm=None)


def check_rbm_data(name: str, data, num_visible: int | None = None):
    """``(n, V)`` binary data as the default float dtype (images must be flattened first)."""
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if not (np.issubdtype(np.dtype(data.dtype), np.number) or data.dtype == bool):
        raise TypeError(f"{name}: expected a numeric array of 0s and 1s, got {describe(data)}")
    if np.issubdtype(np.dtype(data.dtype), np.complexfloating):
        raise TypeError(f"{name}: expected real 0s and 1s, got {describe(data)}")
    data = jnp.asarray(data)
    if data.ndim != 2:
        hint = (
            "; flatten images first, e.g. x.reshape(len(x), -1) -> "
            f"(n, {int(np.prod(data.shape[1:]))})"
            if data.ndim > 2
            else ""
        )
        raise ValueError(f"{name}: expected an array of shape (n, V), got shape {data.shape}{hint}")
    if data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(
            f"{name}: expected at least one example and one unit, got {describe(data)}"
        )
    if num_visible is not None and data.shape[1] != num_visible:
        raise ValueError(
            f"{name}: expected {num_visible} visible units per example, got shape {data.shape}"
        )
    check_binary(name, data)
    return data.astype(jnp.result_type(float))


def _initial_rbm_params(data, num_hidden, init_scale, init_visible_bias, key, rbm):
    n, V = data.shape
    if rbm is not None:
        if not isinstance(rbm, BernoulliRBM):
            raise TypeError(f"rbm: expected a BernoulliRBM, got {type(rbm).__name__}")
        if rbm.num_hidden != num_hidden or rbm.num_visible != V:
            raise ValueError(
                f"rbm: expected an RBM with V={V}, H={num_hidden}, got V={rbm.num_visible}, "
                f"H={rbm.num_hidden}"
            )
        return jax.tree.map(jnp.asarray, rbm.params)
    if init_visible_bias == "data":
        p = jnp.clip((jnp.sum(data, axis=0) + 0.5) / (n + 1.0), 1e-3, 1 - 1e-3)
        b_v = jnp.log(p) - jnp.log1p(-p)
    else:
        b_v = jnp.zeros(V, jnp.float32)
    return {
        "W": init_scale * jax.random.normal(key, (V, num_hidden), jnp.float32),
        "b_visible": b_v.astype(jnp.float32),
        "b_hidden": jnp.zeros(num_hidden, jnp.float32),
    }


def _rbm_validation_loss(num_visible: int, num_hidden: int):
    """Held-out mean NLL: exact when enumerable, else the negative pseudo-log-likelihood."""
    if min(num_visible, num_hidden) <= EXACT_MAX_UNITS:
        return lambda p, rows, key: jnp.mean(rbm_free_energy(p, rows)) + rbm_log_normalizer_exact(p)
    return lambda p, rows, key: -jnp.mean(rbm_pseudo_log_likelihood(p, rows))


def fit_rbm(
    data,
    num_hidden: int,
    *,
    method: str = "cd",
    k: int = 1,
    epochs: int | None = None,
    momentum: float | None = None,
    weight_decay: float = 0.0,
    init_scale: float = 0.01,
    init_visible_bias: str = "data",
    num_persistent: int | None = None,
    rbm: BernoulliRBM | None = None,
    num_gibbs_steps: int = 1000,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a :class:`~numpyro_hgf.distributions.BernoulliRBM` by CD-k or persistent CD.

    Args:
        data: ``(n, V)`` binary data (flatten images first).
        num_hidden: number of hidden units ``H`` (positive).
        method: ``"cd"`` (chains restart at the minibatch, Hinton 2002) or ``"pcd"``
            (persistent chains carried across steps, Tieleman 2008; they live in the
            train state -- see the module docstring).
        k: Gibbs sweeps per negative phase.
        epochs: train for this many epochs of ``ceil(n / batch_size)`` steps instead of
            ``steps`` (give at most one; the recommendation is 10 epochs).
        momentum: of the ``"sgd"`` optimizer (the classical rule ``θ += lr * (<·>_data -
            <·>_model)``, optionally with momentum).
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
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: SGD at learning rate 0.05 on minibatches of 100 for 10 epochs, no
            clipping, no EMA (``optimizer="adam"`` or any optax transformation instead).
            With ``validation`` rows (``(m, V)`` binary) the RBM gets the params of the
            lowest held-out mean NLL -- exact when ``min(V, H) <= 20``, the negative
            pseudo-log-likelihood otherwise.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult` (its
            ``history`` is the CD surrogate per step, not a likelihood).

    Returns:
        The trained ``BernoulliRBM`` (saveable), or ``(rbm, result)``.
    """
    key = check_key("key", key)
    method = check_choice("method", method, ("cd", "pcd"))
    num_hidden = check_positive_int("num_hidden", num_hidden)
    k = check_positive_int("k", k)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)
    if momentum is not None and not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
    check_choice("init_visible_bias", init_visible_bias, ("data", "zero"))
    init_scale = check_nonnegative_float("init_scale", init_scale)
    data = check_rbm_data("data", data)
    num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
    n, V = data.shape
    if epochs is not None and "steps" in train_options:
        raise ValueError(
            f"steps: expected steps or epochs, not both; got steps={train_options['steps']}, "
            f"epochs={epochs}"
        )
    batch = train_options.get("batch_size", RBM_RECIPE.batch_size)
    epochs = 10 if epochs is None else check_positive_int("epochs", epochs)
    recipe = Recipe(**{**vars(RBM_RECIPE), "steps": epochs * math.ceil(n / batch)})
    options = resolve_options(options, train_options, recipe)
    if options.validation is not None:
        options = options.replace(validation=check_rbm_data("validation", options.validation, V))
    optimizer = None
    if options.optimizer == "sgd":
        optimizer = shared_optimizer(optax.sgd, options.learning_rate, momentum=momentum)

    init_key, chain_key, train_key = jax.random.split(key, 3)
    params = _initial_rbm_params(data, num_hidden, init_scale, init_visible_bias, init_key, rbm)
    chains = None
    if method == "cd":
        loss_fn = ModelLoss(_rbm_objective, None, takes_key=True, k=k, weight_decay=weight_decay)
    else:
        num_persistent = check_positive_int(
            "num_persistent", options.batch_size if num_persistent is None else num_persistent
        )
        chains = data[jax.random.randint(chain_key, (num_persistent,), 0, n)]
        loss_fn = ModelLoss(
            _rbm_objective, None, takes_key=True, k=k, weight_decay=weight_decay, persistent=True
        )
    result = fit_objective(
        loss_fn,
        params,
        data,
        options,
        key=train_key,
        description=f"fit_rbm ({method.upper()}-{k}, H={num_hidden})",
        optimizer=optimizer,
        has_aux=method == "pcd",
        aux=chains,
        validation_loss=_rbm_validation_loss(V, num_hidden),
    )
    p = result.params
    out = BernoulliRBM(p["W"], p["b_visible"], p["b_hidden"], num_gibbs_steps=num_gibbs_steps)
    return (out, result) if return_result else out


def fit_boltzmann_exact(
    data,
    *,
    l2: float = 0.0,
    num_gibbs_steps: int = 1000,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
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
        l2: non-negative ridge penalty on ``W``.
        num_gibbs_steps: the returned machine's sampling sweeps.
        key: optional ``jax.random`` key (the objective is deterministic).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 1,000 full-batch Adam steps (each uses the exact data moments),
            learning rate 0.05 with cosine decay, no clipping, no EMA.  With ``validation``
            rows the machine gets the params of the lowest exact held-out NLL.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.
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
    num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
    key = jax.random.key(0) if key is None else check_key("key", key)
    options = resolve_options(options, train_options, BOLTZMANN_EXACT_RECIPE)
    l2 = check_nonnegative_float("l2", l2)
    if options.validation is not None:
        check_spins("validation", options.validation)
    data = data.astype(jnp.result_type(float))  # float64 under jax_enable_x64
    S = data.T @ data / data.shape[0]
    m = jnp.mean(data, axis=0)
    upper = jnp.triu(jnp.ones((d, d), data.dtype), 1)

    def to_model_params(p):
        Wu = p["W"] * upper
        return {"W": Wu + Wu.T, "b": p["b"]}

    def loss_fn(p, batch, key):
        del batch, key  # full-batch: the data enter through their moments
        mp = to_model_params(p)
        mean_ll = 0.5 * jnp.sum(mp["W"] * S) + mp["b"] @ m - bm_log_normalizer_exact(mp)
        return -mean_ll + 0.5 * l2 * jnp.sum(mp["W"] ** 2)

    def held_out(p, rows, key):  # the exact mean NLL of held-out rows
        mp = to_model_params(p)
        return jnp.mean(bm_energy(mp, rows)) + bm_log_normalizer_exact(mp)

    init = {"W": jnp.zeros((d, d), data.dtype), "b": jnp.arctanh(jnp.clip(m, -0.99, 0.99))}
    result = fit_objective(
        loss_fn,
        init,
        data,
        options.replace(batch_size=1),
        key=key,
        description=f"fit_boltzmann_exact (d={d})",
        validation_loss=held_out,
    )
    mp = to_model_params(result.params)
    bm = BoltzmannMachine(mp["W"], mp["b"], num_gibbs_steps=num_gibbs_steps)
    return (bm, result) if return_result else bm


def _rbm_objective(_, params, batch, key, *chains, k, weight_decay, persistent=False):
    """CD-k (or, with ``persistent``, PCD-k on the carried ``chains``) as a
    :class:`ModelLoss` objective: one compiled program per ``(k, weight_decay)``."""
    if persistent:
        return rbm_pcd_loss(k, weight_decay)(params, batch, key, *chains)
    return rbm_cd_loss(k, weight_decay)(params, batch, key)
