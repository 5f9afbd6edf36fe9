"""Training deep belief nets and deep Boltzmann machines on the one fit skeleton.

* :func:`pretrain_dbn` -- greedy layer-wise training of a stack of RBMs (Hinton, Osindero &
  Teh 2006): RBM ``l`` is fitted by CD-k to the hidden means of RBM ``l - 1`` on the data;
  the stack is a :class:`~numpyro_hgf.distributions.DeepBeliefNet`.  With ``doubling=True``
  the modules are Salakhutdinov & Hinton's (2009, §3.1): the input to every layer that will
  have two neighbours in the DBM is doubled while it is trained
  (:func:`~numpyro_hgf.objectives.deep_boltzmann.scaled_rbm_cd_loss`).
* :func:`fit_dbm` -- the doubled pre-training composed into a
  :class:`~numpyro_hgf.distributions.DeepBoltzmannMachine` (weights as trained; a layer shared
  by two modules gets the mean of their two biases), then joint training by the mean-field
  E-step and the persistent-chain M-step (SH09 Algorithm 1,
  :func:`~numpyro_hgf.objectives.deep_boltzmann.dbm_pcd_loss`).  The persistent chains are the
  trainer's auxiliary state (like ``fit_rbm(method="pcd")``), so they are checkpointed,
  resumed and frozen on a non-finite loss together with the weights.

Each RBM of the stack and the joint stage run through
:func:`~numpyro_hgf.train.fit.fit_objective` with the caller's options (the pre-training
stages without validation, patience and callback, their checkpoints in
``checkpoint_dir/pretrain_<l>``).
"""

from __future__ import annotations

import math
import os
from typing import Unpack

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf._checks import check_key, check_nonnegative_float, check_positive_int
from numpyro_hgf.distributions.deep_belief import DeepBeliefNet
from numpyro_hgf.distributions.deep_boltzmann import DeepBoltzmannMachine
from numpyro_hgf.nn.boltzmann import EXACT_MAX_UNITS, log_odds
from numpyro_hgf.nn.deep_boltzmann import (
    dbm_enumerated_units,
    dbm_log_normalizer_exact,
    dbm_mean_field,
    dbm_mean_field_bound_unnormalized,
)
from numpyro_hgf.objectives.deep_boltzmann import dbm_pcd_loss, scaled_rbm_cd_loss
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.rbm import check_rbm_data

__all__ = ["fit_dbm", "pretrain_dbn", "DBM_RECIPE"]

#: The optimisation ``fit_dbm`` and ``pretrain_dbn`` recommend (``steps``: from epochs).
DBM_RECIPE = Recipe(batch_size=100, learning_rate=0.05, optimizer="sgd", clip_norm=None)


def _check_hidden_layers(hidden_layers) -> tuple[int, ...]:
    if isinstance(hidden_layers, int) or not hasattr(hidden_layers, "__len__"):
        raise TypeError(
            f"hidden_layers: expected a sequence of layer sizes, got {type(hidden_layers).__name__}"
        )
    sizes = tuple(check_positive_int("hidden_layers", n) for n in hidden_layers)
    if len(sizes) < 2:
        raise ValueError(f"hidden_layers: expected at least 2 hidden layers, got {list(sizes)}")
    return sizes


def _resolve(data, epochs, train_options, options, name):
    if epochs is not None and "steps" in train_options:
        raise ValueError(
            f"steps: expected steps or epochs, not both; got steps={train_options['steps']}, "
            f"epochs={epochs}"
        )
    epochs = 10 if epochs is None else check_positive_int(name, epochs)
    batch = train_options.get("batch_size", DBM_RECIPE.batch_size) or data.shape[0]
    steps = epochs * math.ceil(data.shape[0] / batch)
    return resolve_options(options, train_options, Recipe(**{**vars(DBM_RECIPE), "steps": steps}))


def _optimizer(options, momentum):
    return (
        optax.sgd(options.learning_rate, momentum=momentum) if options.optimizer == "sgd" else None
    )


def _pretrain_stack(data, sizes, *, doubling, k, init_scale, options, momentum, key, what):
    """The RBM params of the greedy stack, bottom first."""
    x, stack, L = data, [], len(sizes)
    for i, (H, k_i) in enumerate(zip(sizes, jax.random.split(key, len(sizes)), strict=True)):
        up = 2.0 if doubling and i < L - 1 else 1.0
        down = 2.0 if doubling and i > 0 else 1.0
        k_init, k_fit = jax.random.split(k_i)
        p = jnp.clip((jnp.sum(x, 0) + 0.5) / (x.shape[0] + 1.0), 1e-3, 1 - 1e-3)
        params = {
            "W": init_scale * jax.random.normal(k_init, (x.shape[1], H), x.dtype),
            "b_visible": log_odds(p).astype(x.dtype),
            "b_hidden": jnp.zeros(H, x.dtype),
        }
        stage = options.replace(validation=None, patience=None, callback=None)
        if options.checkpoint_dir is not None:
            stage = stage.replace(
                checkpoint_dir=os.path.join(options.checkpoint_dir, f"pretrain_{i}")
            )
        result = fit_objective(
            scaled_rbm_cd_loss(up, down, k),
            params,
            x,
            stage,
            key=k_fit,
            description=f"{what}: RBM {i + 1}/{L} ({x.shape[1]}-{H}, input x{up:g}/x{down:g})",
            optimizer=_optimizer(stage, momentum),
        )
        stack.append(result.params)
        x = jax.nn.sigmoid(up * (x @ result.params["W"]) + result.params["b_hidden"])
    return stack


def pretrain_dbn(
    data,
    hidden_layers,
    *,
    doubling: bool = False,
    k: int = 1,
    epochs: int | None = None,
    momentum: float | None = None,
    init_scale: float = 0.01,
    num_gibbs_steps: int = 1000,
    key=None,
    options: TrainOptions | None = None,
    **train_options: Unpack[TrainKeywords],
) -> DeepBeliefNet:
    """Greedy layer-wise pre-training of a :class:`~numpyro_hgf.distributions.DeepBeliefNet`.

    Args:
        data: ``(n, V)`` binary data (flatten images first).
        hidden_layers: sizes ``(n_1, ..., n_L)`` of ``L >= 2`` hidden layers.
        doubling: pre-train the DBM modules of SH09 §3.1 instead of plain RBMs.
        k: Gibbs sweeps of each CD-k step.
        epochs: epochs per RBM (default 10; or give ``steps``, per RBM).
        momentum: of the ``"sgd"`` optimizer.
        init_scale: ``W ~ N(0, init_scale²)``; visible biases start at the data log-odds.
        num_gibbs_steps: the returned net's top-RBM sweeps per sample.
        key: ``jax.random`` key (required).
        options, **train_options: how to train each RBM (:class:`~numpyro_hgf.train.
            TrainOptions`); recommended SGD at 0.05 on minibatches of 100 (no validation:
            the layers are not likelihood models of the data on their own).

    Returns:
        The ``DeepBeliefNet``: ``W_l`` of RBM ``l``, generative biases ``b_{l-1}`` the visible
        biases of RBM ``l``, top hidden biases those of the last RBM.
    """
    key = check_key("key", key)
    sizes = _check_hidden_layers(hidden_layers)
    k = check_positive_int("k", k)
    init_scale = check_nonnegative_float("init_scale", init_scale)
    num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
    data = check_rbm_data("data", data)
    options = _resolve(data, epochs, train_options, options, "epochs")
    if options.validation is not None or options.patience is not None:
        raise ValueError("validation: pretrain_dbn trains without validation rows; use fit_dbm")
    stack = _pretrain_stack(
        data, sizes, doubling=bool(doubling), k=k, init_scale=init_scale, options=options,
        momentum=momentum, key=key, what="pretrain_dbn",
    )  # fmt: skip
    biases = [r["b_visible"] for r in stack] + [stack[-1]["b_hidden"]]
    return DeepBeliefNet([r["W"] for r in stack], biases, num_gibbs_steps=num_gibbs_steps)


def _dbm_from_stack(stack) -> dict:
    """SH09 composition: the weights as trained, shared layers' biases averaged."""
    L = len(stack)
    mid = [0.5 * (stack[i - 1]["b_hidden"] + stack[i]["b_visible"]) for i in range(1, L)]
    return {
        "weights": tuple(r["W"] for r in stack),
        "biases": (stack[0]["b_visible"], *mid, stack[-1]["b_hidden"]),
    }


def _initial_chains(params, data, num_chains, num_mean_field_iters, key):
    """Chains at random training rows with hidden states drawn from their mean field."""
    k_rows, *k_layers = jax.random.split(key, len(params["weights"]) + 1)
    v = data[jax.random.randint(k_rows, (num_chains,), 0, data.shape[0])]
    mu = dbm_mean_field(params, v, num_mean_field_iters)
    hidden = [
        jax.random.bernoulli(kk, m).astype(v.dtype) for kk, m in zip(k_layers, mu, strict=True)
    ]
    return (v, *hidden)


def fit_dbm(
    data,
    hidden_layers,
    *,
    epochs: int | None = None,
    pretrain_epochs: int | None = None,
    k: int = 1,
    num_mean_field_iters: int = 10,
    num_persistent: int | None = None,
    momentum: float | None = None,
    weight_decay: float = 0.0,
    init_scale: float = 0.01,
    dbm: DeepBoltzmannMachine | None = None,
    num_gibbs_steps: int = 1000,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a :class:`~numpyro_hgf.distributions.DeepBoltzmannMachine` (SH09).

    Args:
        data: ``(n, V)`` binary data (flatten images first).
        hidden_layers: sizes ``(n_1, ..., n_L)`` of ``L >= 2`` hidden layers.
        epochs: epochs of the joint stage (default 10; or give ``steps``).
        pretrain_epochs: epochs per pre-training module (default 10, whatever ``steps``).
        k: Gibbs sweeps of the CD-k pre-training and of the persistent chains per step.
        num_mean_field_iters: fixed-point sweeps of the E-step (from the doubled bottom-up
            start); the returned DBM evaluates its bound with 30.
        num_persistent: persistent chains (default ``batch_size``), started at random
            training rows with hidden states drawn from their mean field.
        momentum: of the ``"sgd"`` optimizer.
        weight_decay: ``½ λ Σ_l ||W_l||²`` in the joint stage.
        init_scale: pre-training ``W ~ N(0, init_scale²)``.
        dbm: warm start from this DBM (no pre-training; its layers must match).
        num_gibbs_steps: the returned DBM's sweeps per sample.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`),
            for both stages.  Recommended: SGD at 0.05 on minibatches of 100, no clipping,
            no EMA.  With ``validation`` rows (``(m, V)`` binary) the DBM gets the params of
            the best held-out mean-field bound; this needs an exact ``log Z`` (the smaller
            parity of the layers at most 20 units).
        return_result: also return the joint stage's :class:`~numpyro_hgf.train.TrainResult`
            (its ``history`` is the surrogate energy gap; ``state.aux`` the chains).

    Returns:
        The trained ``DeepBoltzmannMachine`` (saveable), or ``(dbm, result)``.
    """
    key = check_key("key", key)
    sizes = _check_hidden_layers(hidden_layers)
    k = check_positive_int("k", k)
    num_mean_field_iters = check_positive_int("num_mean_field_iters", num_mean_field_iters)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)
    init_scale = check_nonnegative_float("init_scale", init_scale)
    num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
    if momentum is not None and not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
    data = check_rbm_data("data", data)
    V = data.shape[1]
    if dbm is not None:
        if not isinstance(dbm, DeepBoltzmannMachine):
            raise TypeError(f"dbm: expected a DeepBoltzmannMachine, got {type(dbm).__name__}")
        if dbm.layer_sizes != (V, *sizes):
            raise ValueError(f"dbm: expected layer sizes {(V, *sizes)}, got {dbm.layer_sizes}")
    options = _resolve(data, epochs, train_options, options, "epochs")
    pretrain_epochs = 10 if pretrain_epochs is None else pretrain_epochs
    pretrain_epochs = check_positive_int("pretrain_epochs", pretrain_epochs)
    batch = min(options.batch_size or data.shape[0], data.shape[0])
    pre_options = options.replace(steps=pretrain_epochs * math.ceil(data.shape[0] / batch))
    exact = dbm_enumerated_units((V, *sizes))[1] <= EXACT_MAX_UNITS
    if options.validation is not None:
        if not exact:
            raise ValueError(
                f"validation: the held-out mean-field bound needs an exact log Z, but the "
                f"layers {(V, *sizes)} have more than {EXACT_MAX_UNITS} units in each parity"
            )
        options = options.replace(validation=check_rbm_data("validation", options.validation, V))
    num_persistent = check_positive_int(
        "num_persistent", batch if num_persistent is None else num_persistent
    )
    pre_key, chain_key, train_key = jax.random.split(key, 3)
    if dbm is None:
        stack = _pretrain_stack(
            data, sizes, doubling=True, k=k, init_scale=init_scale, options=pre_options,
            momentum=momentum, key=pre_key, what="fit_dbm pre-training",
        )  # fmt: skip
        params = _dbm_from_stack(stack)
    else:
        params = jax.tree.map(lambda x: jnp.asarray(x, data.dtype), dbm.params)
    chains = _initial_chains(params, data, num_persistent, num_mean_field_iters, chain_key)

    def held_out(p, rows, key):  # minus the mean mean-field bound (exact log Z)
        mu = dbm_mean_field(p, rows, num_mean_field_iters)
        bound = dbm_mean_field_bound_unnormalized(p, rows, mu)
        return dbm_log_normalizer_exact(p) - jnp.mean(bound)

    result = fit_objective(
        dbm_pcd_loss(num_mean_field_iters, k, weight_decay),
        params,
        data,
        options,
        key=train_key,
        description=f"fit_dbm (mean-field + PCD-{k}, layers {(V, *sizes)})",
        optimizer=_optimizer(options, momentum),
        has_aux=True,
        aux=chains,
        validation_loss=held_out if exact else None,
    )
    p = result.params
    out = DeepBoltzmannMachine(p["weights"], p["biases"], num_gibbs_steps=num_gibbs_steps)
    return (out, result) if return_result else out
