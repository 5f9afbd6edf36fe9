"""Sample quality of image models: an FID-like Fréchet distance, sliced Wasserstein,
memorisation, and NFE-versus-quality curves.

* :func:`frechet_distance` -- the Fréchet (2-Wasserstein) distance between the Gaussians fitted
  to two feature sets (Dowson & Landau 1982; the formula behind FID, Heusel et al. 2017)::

      FD = ||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))

* :func:`train_digits_classifier` / :func:`classifier_frechet_distance` -- the same distance in
  the penultimate-layer features of a small digits classifier trained *in the same run* on the
  shipped digits (:func:`numpyro_hgf.datasets.digits`).  This is **FID-like, not FID**: FID
  uses Inception-v3 features of ImageNet, which would need a download and does not apply to 8x8
  digits; numbers are comparable only between models scored with the same classifier.
* :func:`nearest_training_distance` -- for each sample the distance to its nearest training
  image, against the same for held-out test images: a model that copies training images has
  samples much closer to the training set than fresh data are.
* :func:`nfe_quality_curve` -- quality against the number of function evaluations of a sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    check_finite,
    check_hidden_sizes,
    check_instance,
    check_key,
    check_positive_int,
    check_progress,
    describe,
)
from numpyro_hgf.datasets import digits
from numpyro_hgf.metrics.distances import _as_samples, sliced_wasserstein
from numpyro_hgf.train.trainer import Trainer

__all__ = [
    "DigitsClassifier",
    "MemorisationCheck",
    "classifier_frechet_distance",
    "frechet_distance",
    "nearest_training_distance",
    "nfe_quality_curve",
    "train_digits_classifier",
]


def _real(name: str, x) -> np.ndarray:
    """``x`` as an array of real numbers (floats or integers; strings, objects and
    complex numbers are a ``TypeError`` naming ``name``)."""
    arr = x if hasattr(x, "dtype") else np.asarray(x)
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"{name}: expected a real (float or integer) array, got {describe(arr)}")
    return arr


def _features(name: str, x) -> np.ndarray:
    arr = np.asarray(_real(name, x), np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name}: expected features of shape (n >= 2, k), got {describe(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite features, got non-finite values")
    return arr


def frechet_distance(x, y) -> float:
    """Fréchet distance between Gaussians fitted to ``x: (n, k)`` and ``y: (m, k)`` (float64,
    on the host).  The matrix square root is ``scipy.linalg.sqrtm``; its tiny imaginary part
    from rounding is dropped."""
    from scipy.linalg import sqrtm

    x, y = _features("x", x), _features("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected {x.shape[1]} features like x, got {y.shape[1]}")
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root = sqrtm(s_x @ s_y)
    root = np.real(root)
    value = np.sum((mu_x - mu_y) ** 2) + np.trace(s_x + s_y - 2.0 * root)
    return float(max(value, 0.0))


class DigitsClassifier(nn.Module):
    """Small MLP classifier of 8x8 digits: ``x: (n, 8, 8[, 1])`` -> logits ``(n, 10)``.

    ``features`` (the last hidden layer, ``(n, hidden[-1])``) is what the Fréchet distance uses.
    """

    hidden: Sequence[int] = (128, 64)

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.gelu(nn.Dense(width)(h))
        if return_features:
            return h
        return nn.Dense(10)(h)


class TrainedClassifier(NamedTuple):
    module: DigitsClassifier
    params: dict
    test_accuracy: float

    def features(self, x) -> jax.Array:
        return self.module.apply({"params": self.params}, jnp.asarray(x), True)


def train_digits_classifier(
    key, *, steps: int = 2_000, hidden=(128, 64), progress: bool | None = False
) -> TrainedClassifier:
    """Train :class:`DigitsClassifier` on the training split (cross-entropy, Adam, through the
    package's :class:`~numpyro_hgf.train.Trainer`); reports its test-split accuracy."""

    key = check_key("key", key)
    steps = check_positive_int("steps", steps)
    hidden = check_hidden_sizes("hidden", hidden)
    check_progress(progress)
    train, test = digits("train"), digits("test")
    module = DigitsClassifier(tuple(hidden))
    init_key, fit_key = jax.random.split(key)
    params = module.init(init_key, train.images[:1])["params"]

    def loss(p, batch, k):
        images, labels = batch
        logits = module.apply({"params": p}, images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    trainer = Trainer(
        loss,
        optax.adam(optax.cosine_decay_schedule(1e-3, steps)),
        batch_size=128,
        progress=progress,
        description="digits classifier",
    )
    result = trainer.fit(params, (train.images, train.labels), steps, fit_key)
    logits = module.apply({"params": result.params}, test.images)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == test.labels))
    return TrainedClassifier(module, result.params, accuracy)


def classifier_frechet_distance(samples, reference, classifier: TrainedClassifier) -> float:
    """FID-like distance: :func:`frechet_distance` in ``classifier``'s features (not FID)."""
    _check_classifier(classifier)
    return frechet_distance(classifier.features(samples), classifier.features(reference))


def _check_classifier(classifier) -> None:
    what = "a TrainedClassifier (from train_digits_classifier)"
    check_instance("classifier", classifier, TrainedClassifier, what)


class MemorisationCheck(NamedTuple):
    """``sample_distances``: each sample's distance to its nearest training image;
    ``test_distances``: the same for held-out images; ``ratio``: median of the first over the
    median of the second (about 1 for a model that generalises, near 0 for one that copies);
    ``nearest``: index of each sample's nearest training image."""

    sample_distances: np.ndarray
    test_distances: np.ndarray
    ratio: float
    nearest: np.ndarray


def nearest_training_distance(samples, train, test) -> MemorisationCheck:
    """Nearest-training-image check for memorisation (Euclidean distance on pixels)."""
    samples, train, test = (
        _images(name, x) for name, x in (("samples", samples), ("train", train), ("test", test))
    )
    for name, x in (("samples", samples), ("test", test)):
        if x.shape[1] != train.shape[1]:
            raise ValueError(
                f"{name}: expected images of {train.shape[1]} pixels like train, got {x.shape[1]}"
            )

    def nearest(a, b):
        d2 = jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2 * a @ b.T
        d2 = jnp.maximum(d2, 0.0)
        return np.sqrt(np.asarray(jnp.min(d2, 1))), np.asarray(jnp.argmin(d2, 1))

    sample_d, idx = nearest(samples, train)
    test_d, _ = nearest(test, train)
    return MemorisationCheck(sample_d, test_d, float(np.median(sample_d) / np.median(test_d)), idx)


def _images(name: str, x) -> jax.Array:
    """Images ``(n >= 1, *pixels)`` as a finite ``(n, pixels)`` array."""
    arr = _real(name, x)
    if arr.ndim < 2 or arr.shape[0] < 1 or min(arr.shape[1:]) < 1:
        raise ValueError(
            f"{name}: expected a non-empty batch of images (n, *pixels), got {describe(arr)}"
        )
    check_finite(name, arr)
    return jnp.asarray(arr).reshape(arr.shape[0], -1)


def nfe_quality_curve(
    sample_fn: Callable[[jax.Array, int], jax.Array],
    nfes: Sequence[int],
    reference,
    key,
    *,
    classifier: TrainedClassifier | None = None,
    num_projections: int = 256,
) -> list[dict]:
    """Quality against sampler cost.

    Args:
        sample_fn: ``(key, nfe) -> samples (n, *event_shape)``.
        nfes: the numbers of function evaluations to try.
        reference: held-out images.
        key: ``jax.random`` key (the same samples' key at every NFE, so curves are paired).
        classifier: adds the FID-like ``frechet`` column when given.

    Returns:
        One dict per NFE: ``nfe``, ``sliced_w`` (:func:`numpyro_hgf.metrics.sliced_wasserstein`)
        and ``frechet``.
    """

    check_instance("sample_fn", sample_fn, Callable, "a callable (key, nfe) -> samples")
    if isinstance(nfes, str) or not isinstance(nfes, Iterable):
        raise TypeError(f"nfes: expected a sequence of positive integers, got {nfes!r}")
    nfes = [check_positive_int("nfes", nfe) for nfe in nfes]  # all before any sampling
    check_positive_int("num_projections", num_projections)
    _as_samples("reference", reference)
    if classifier is not None:
        _check_classifier(classifier)
    sample_key, proj_key = jax.random.split(check_key("key", key))
    rows = []
    for nfe in nfes:
        samples = sample_fn(sample_key, nfe)
        row = {
            "nfe": nfe,
            "sliced_w": float(sliced_wasserstein(samples, reference, proj_key, num_projections)),
        }
        if classifier is not None:
            row["frechet"] = classifier_frechet_distance(samples, reference, classifier)
        rows.append(row)
    return rows
