"""``GeneratorPrior``: the push-forward ``x = G(z)``, ``z ~ N(0, I)``, of a trained generator.

Row "adversarial" of the package's table: the learned field is a generator ``G_theta`` (a
``flax.linen`` module and its params, trained by :func:`numpyro_hgf.train.fit_gan`), the
path is the one-step map ``z -> G(z)``, the objective a GAN / WGAN / WGAN-GP game
(:mod:`numpyro_hgf.objectives.adversarial`).

The law of ``G(z)`` has no tractable density (``G`` is neither invertible nor
dimension-preserving in general: a 64-pixel digit from an 8-d latent lives on an 8-d
manifold), so :meth:`GeneratorPrior.log_prob` raises :class:`GeneratorDensityError`.
Inside a NumPyro model the prior is used through its latent (Bora et al. 2017, "Compressed
sensing using generative models", Sec. 3): :meth:`GeneratorPrior.latent_model` samples
``z ~ N(0, I)`` as the site ``{name}_latent`` and records ``x = G(z)`` as the deterministic
site ``name``, so NUTS (NumPyro's or :func:`numpyro_hgf.infer.run_nuts`) and SVI run over
``z``; :class:`GeneratorReparam` does the same for a model written with
``numpyro.sample(name, prior)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample
from numpyro.infer.reparam import Reparam

from numpyro_hgf._checks import check_event_shape_arg, check_key, check_positive_int, describe
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.config import module_config, module_from_config

__all__ = ["GeneratorPrior", "GeneratorDensityError", "GeneratorReparam", "LATENT_SUFFIX"]

#: The latent site of ``name`` is ``name + LATENT_SUFFIX``.
LATENT_SUFFIX = "_latent"


class GeneratorDensityError(NotImplementedError):
    """``log_prob`` of a generator prior: ``x = G(z)`` has no tractable density."""


def _float_dtype(params):
    leaves = [
        leaf
        for leaf in jax.tree_util.tree_leaves(params)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


@register_model("generator_prior")
class GeneratorPrior(dist.Distribution):
    """The distribution of ``x = G(z)``, ``z ~ N(0, I_latent_dim)``: a generator prior.

    Args:
        generator: a ``flax.linen`` module, ``generator.apply({"params": params}, z)`` with
            ``z: (batch, latent_dim) -> (batch, *event_shape)`` (e.g.
            :class:`~numpyro_hgf.nn.MLP` with ``out_dim = d``).
        params: its inner params pytree (pytree data: ``jit`` / ``vmap`` / ``grad`` pass
            through, new params do not recompile).
        latent_dim: the dimension of ``z``.
        event_shape: the shape of ``x``; default: inferred from ``generator`` by abstract
            evaluation.
        validate_args: NumPyro's argument validation.

    Shapes: ``batch_shape = ()``; ``sample(key, sample_shape) -> (*sample_shape,
    *event_shape)``; :meth:`generate` ``z: (..., latent_dim) -> (..., *event_shape)``.
    Samples are reparameterized (``has_rsample``: differentiable in the params).

    ``log_prob`` raises :class:`GeneratorDensityError` (a ``NotImplementedError``):
    use :meth:`latent_model` or :class:`GeneratorReparam` instead.
    """

    arg_constraints = {}
    has_rsample = True
    pytree_data_fields = ("params",)
    pytree_aux_fields = ("generator", "latent_dim")

    def __init__(self, generator, params, latent_dim: int, *, event_shape=None, validate_args=None):
        if not hasattr(generator, "apply"):
            raise TypeError(
                f"generator: expected a flax.linen module, got {type(generator).__name__}"
            )
        self.generator = generator
        self.params = params
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        if event_shape is None:
            event_shape = self._infer_event_shape()
        else:
            event_shape = check_event_shape_arg("event_shape", event_shape)
        super().__init__(batch_shape=(), event_shape=event_shape, validate_args=validate_args)

    def _infer_event_shape(self) -> tuple[int, ...]:
        z = jax.ShapeDtypeStruct((1, self.latent_dim), _float_dtype(self.params))
        try:
            out = jax.eval_shape(self._apply, self.params, z)
        except Exception as err:  # a generator built for another latent size
            first = str(err).strip().split("\n")[0]
            raise ValueError(
                f"latent_dim: expected the latent size the generator's params were built for, "
                f"got {self.latent_dim}; the generator raised {type(err).__name__}: {first}"
            ) from err
        if len(out.shape) < 2 or out.shape[0] != 1:
            raise ValueError(
                f"generator: expected an output of shape (batch, *event_shape), got "
                f"{tuple(out.shape)} for z of shape (1, {self.latent_dim})"
            )
        return tuple(int(n) for n in out.shape[1:])

    def _apply(self, params, z):
        return self.generator.apply({"params": params}, z)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    # -- the map and its latent ----------------------------------------------------------
    @property
    def latent(self) -> dist.Distribution:
        """``N(0, I_latent_dim)``, the law of ``z`` (event shape ``(latent_dim,)``)."""
        dtype = _float_dtype(self.params)
        zeros = jnp.zeros((self.latent_dim,), dtype)
        return dist.Normal(zeros, jnp.ones_like(zeros)).to_event(1)

    def generate(self, z) -> jax.Array:
        """``G(z)``: ``z: (..., latent_dim) -> (..., *event_shape)``."""
        z = jnp.asarray(z)
        if z.ndim < 1 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z: expected an array of shape (..., {self.latent_dim}), got {describe(z)}"
            )
        flat = z.reshape(-1, self.latent_dim)
        return self._apply(self.params, flat).reshape(*z.shape[:-1], *self.event_shape)

    def sample(self, key, sample_shape=()):
        """``G(z)`` for ``z ~ N(0, I)``: ``(*sample_shape, *event_shape)``."""
        check_key("key", key)
        shape = tuple(sample_shape) + tuple(self.batch_shape) + (self.latent_dim,)
        z = jax.random.normal(key, shape, _float_dtype(self.params))
        return self.generate(z)

    def latent_model(self, name: str = "x", sample_shape=()):
        """Use inside a NumPyro model: ``z ~ N(0, I)`` at the site ``{name}_latent`` (batch
        ``sample_shape``, event ``(latent_dim,)``), ``x = G(z)`` recorded as the
        deterministic site ``name`` and returned, ``(*sample_shape, *event_shape)``.

        Inference (NUTS, SVI) then runs over ``z``, whose prior density is exact: the
        posterior of ``x`` is the push-forward of the posterior of ``z`` (Bora et al. 2017).
        """
        if not isinstance(name, str):
            raise TypeError(f"name: expected a site name (str), got {type(name).__name__}")
        latent = self.latent.expand(tuple(sample_shape)) if sample_shape else self.latent
        z = numpyro.sample(name + LATENT_SUFFIX, latent)
        return numpyro.deterministic(name, self.generate(z))

    @validate_sample
    def log_prob(self, value):
        """Not available: raises :class:`GeneratorDensityError`.

        ``G`` maps ``latent_dim`` dimensions to ``prod(event_shape)``; the law of ``G(z)``
        has no tractable density (none at all where ``latent_dim < prod(event_shape)``).
        """
        raise GeneratorDensityError(
            "log_prob: a GeneratorPrior (x = G(z), z ~ N(0, I)) has no tractable density; "
            "use it through its latent: x = prior.latent_model('x') inside the model (z ~ N(0, "
            "I) at the site 'x_latent', x deterministic), or "
            "numpyro.handlers.reparam(model, config={'x': nh.distributions.GeneratorReparam()})"
        )

    # -- params and saving ---------------------------------------------------------------
    def with_params(self, params) -> GeneratorPrior:
        """The same prior with new generator ``params`` (differentiable in ``params``; the
        same static part, so a jitted function of the prior does not recompile)."""
        data, aux = self.tree_flatten()
        names = type(self).gather_pytree_data_fields()
        data = tuple(params if n == "params" else v for n, v in zip(names, data, strict=True))
        return type(self).tree_unflatten(aux, data)

    def save_config(self) -> dict:
        return {
            "generator": module_config(self.generator),
            "latent_dim": self.latent_dim,
            "event_shape": list(self.event_shape),
        }

    @classmethod
    def from_config(cls, config: dict) -> GeneratorPrior:
        generator = module_from_config(config["generator"])
        latent_dim = int(config["latent_dim"])
        params = generator.init(jax.random.key(0), jnp.zeros((1, latent_dim)))["params"]
        return cls(generator, params, latent_dim, event_shape=tuple(config["event_shape"]))

    def __repr__(self) -> str:
        return (
            f"GeneratorPrior({type(self.generator).__name__}, latent_dim={self.latent_dim}, "
            f"event_shape={self.event_shape})"
        )


class GeneratorReparam(Reparam):
    """``numpyro.handlers.reparam`` strategy for a site ``numpyro.sample(name, prior)`` with a
    :class:`GeneratorPrior` (bare, or expanded by plates): ``z ~ N(0, I)`` at
    ``{name}_latent``, ``x = G(z)`` deterministic at ``name`` (the latent form of
    :meth:`GeneratorPrior.latent_model`).  Observed sites are refused (no density)."""

    def __call__(self, name, fn, obs):
        batch_shape = tuple(fn.batch_shape)
        prior = fn.base_dist if isinstance(fn, dist.ExpandedDistribution) else fn
        if not isinstance(prior, GeneratorPrior):
            raise TypeError(
                f"{name}: GeneratorReparam expected a site drawn from a GeneratorPrior, got "
                f"{type(fn).__name__}"
            )
        if obs is not None:
            raise ValueError(
                f"{name}: an observed GeneratorPrior site has no density to score; expected a "
                "latent site"
            )
        latent = prior.latent.expand(batch_shape) if batch_shape else prior.latent
        z = numpyro.sample(name + LATENT_SUFFIX, latent)
        return None, prior.generate(z)
