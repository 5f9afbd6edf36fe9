"""Argument checks shared by the NLME fits and reports: population parameters (the dict of
:meth:`~numpyro_hgf.models.nlme.NLMEModel.init_params`), data, progress flags and priors.

Keys and shapes are static, so :func:`check_params` also runs on traced params (inside a
user's ``jit``); values (finiteness) are checked only when concrete."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from numpyro_hgf._checks import check_finite, check_instance, describe, is_concrete
from numpyro_hgf.models.nlme.data import NLMEData

__all__ = [
    "param_keys",
    "check_params",
    "check_init_values",
    "check_data",
    "check_priors",
    "check_proposal",
]


def param_keys(model) -> dict[str, tuple]:
    """``key -> shape`` of the entries besides ``theta`` that ``model``'s params hold."""
    d = model.eta_dim
    keys = {"log_omega_sd": (d,)}
    if model.omega == "full":
        keys["omega_corr"] = (d * (d - 1) // 2,)
    if model.error in ("additive", "combined"):
        keys["log_sigma_add"] = ()
    if model.error in ("proportional", "combined"):
        keys["log_sigma_prop"] = ()
    return keys


def check_params(model, params, name: str = "init") -> None:
    """``params`` has exactly the entries of ``model.init_params`` (a ``theta`` dict and the
    variance parameters of ``model``'s omega and error model), of the right shapes, finite."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{name}: expected a dict of population parameters (NLMEModel.init_params), "
            f"got {type(params).__name__}"
        )
    shapes = param_keys(model)
    wanted = ["theta", *shapes]
    missing = [k for k in wanted if k not in params]
    extra = [k for k in params if k not in wanted]
    if missing or extra:
        raise ValueError(
            f"{name}: expected the entries {wanted} (NLMEModel.init_params of a model with "
            f"omega={model.omega!r}, error={model.error!r}), got {list(params)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    if not isinstance(params["theta"], Mapping):
        raise TypeError(
            f"{name}['theta']: expected a dict of structural parameters, "
            f"got {type(params['theta']).__name__}"
        )
    for key, shape in shapes.items():
        if np.shape(params[key]) != shape:
            raise ValueError(
                f"{name}[{key!r}]: expected shape {shape} (random effects {model.eta_names}), "
                f"got {describe(params[key]) if hasattr(params[key], 'shape') else params[key]!r}"
            )
    for key, value in params.items():
        for leaf in jax.tree.leaves(value):
            if not hasattr(leaf, "dtype") and not isinstance(leaf, int | float | np.number):
                raise TypeError(f"{name}[{key!r}]: expected numbers or arrays, got {leaf!r}")
            if is_concrete(leaf):
                check_finite(f"{name}[{key!r}]", np.asarray(leaf))


def check_init_values(model, theta, omega_sd, sigma_add, sigma_prop) -> None:
    """The arguments of :meth:`NLMEModel.init_params`: a ``theta`` dict and positive standard
    deviations (``omega_sd`` one number or ``d``; the sigmas ``model``'s error model uses),
    checked when concrete."""
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta: expected a dict of structural parameters, got {theta!r}")
    d = model.eta_dim
    sds = {"omega_sd": omega_sd}
    if model.error in ("additive", "combined"):
        sds["sigma_add"] = sigma_add
    if model.error in ("proportional", "combined"):
        sds["sigma_prop"] = sigma_prop
    for name, value in sds.items():
        if not all(is_concrete(leaf) for leaf in jax.tree.leaves(value)):
            continue
        arr = np.asarray(value)
        what = f"a number or {d} (one per random effect)" if name == "omega_sd" else "a number"
        if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
            raise TypeError(f"{name}: expected {what}, got {value!r}")
        if arr.ndim and (name != "omega_sd" or arr.shape != (d,)):
            raise ValueError(f"{name}: expected {what}, got shape {arr.shape}")
        if not (np.all(arr > 0) and np.all(np.isfinite(arr))):
            raise ValueError(f"{name}: expected positive finite standard deviations, got {value}")


def check_data(data, name: str = "data") -> NLMEData:
    """``data`` is an :class:`NLMEData`."""
    return check_instance(name, data, NLMEData, "an NLMEData (prepare_data, read_events)")


def check_priors(priors, sites: Mapping) -> None:
    """``priors`` maps every name of ``sites`` (``name -> (value, constraint)``) and no other
    to a distribution of that site's shape."""
    if not isinstance(priors, Mapping):
        raise TypeError(
            f"priors: expected a dict from site names to distributions, got {type(priors).__name__}"
        )
    unknown = [k for k in priors if k not in sites]
    if unknown:
        raise ValueError(
            f"priors: expected priors for the sites {list(sites)}, got the unknown site(s) "
            f"{unknown}"
        )
    for name, (value, _) in sites.items():
        if name not in priors:
            raise ValueError(f"priors: expected a prior for site {name!r}, got {sorted(priors)}")
        prior = priors[name]
        if not isinstance(prior, dist.Distribution):
            raise TypeError(
                f"priors[{name!r}]: expected a numpyro distribution, got {type(prior).__name__}"
            )
        shape = prior.shape()
        if shape != np.shape(value):
            # a scalar prior on a vector parameter would silently tie its entries together
            raise ValueError(
                f"priors: expected a prior of shape {np.shape(value)} for site {name!r} "
                f"(its batch + event shape; use .expand(...)), got shape {shape}"
            )


def check_proposal(loc, cov, num_subjects: int, d: int):
    """Per-subject proposal moments: ``loc (N, d)`` and positive-definite ``cov (N, d, d)``
    (values checked when concrete); returns them as arrays."""
    loc, cov = jnp.asarray(loc), jnp.asarray(cov)
    for name, arr, shape in (
        ("loc", loc, (num_subjects, d)),
        ("cov", cov, (num_subjects, d, d)),
    ):
        if arr.shape != shape:
            raise ValueError(
                f"{name}: expected shape {shape} (subjects of data, random effects of model), "
                f"got {describe(arr)}"
            )
        check_finite(name, arr)
    if is_concrete(cov):
        # the Cholesky factor of the proposal symmetrises (c + c^T) / 2, as checked here
        c = np.asarray(cov, np.float64)
        smallest = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2))).min(axis=-1)
        if np.any(smallest <= 0):
            bad = int(np.argmin(smallest))
            raise ValueError(
                "cov: expected positive-definite covariances, got subject "
                f"{bad} with smallest eigenvalue {smallest[bad]:.3g}"
            )
    return loc, cov
