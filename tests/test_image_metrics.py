"""Image-quality metrics against closed forms, with negative controls."""

import jax
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.image_metrics import (
    classifier_frechet_distance,
    frechet_distance,
    nearest_training_distance,
    train_digits_classifier,
)


def test_frechet_distance_matches_the_gaussian_w2_closed_form():
    # N(m1, diag s1) vs N(m2, diag s2): FD = |m1 - m2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    rng = np.random.default_rng(0)
    n, k = 200_000, 3
    m1, m2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    x = m1 + np.sqrt(s1) * rng.standard_normal((n, k))
    y = m2 + np.sqrt(s2) * rng.standard_normal((n, k))
    exact = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    np.testing.assert_allclose(frechet_distance(x, y), exact, rtol=0.02)
    # negative control: two samples of the same law are ~0, far below the shifted pair
    assert frechet_distance(x, m1 + np.sqrt(s1) * rng.standard_normal((n, k))) < 0.01 * exact
    with pytest.raises(ValueError, match="y: expected 3 features like x, got 2"):
        frechet_distance(x, y[:, :2])


@pytest.fixture(scope="module")
def classifier():
    return train_digits_classifier(jax.random.key(0), steps=600, hidden=(64, 32))


def test_digits_classifier_is_accurate_and_its_frechet_distance_separates(classifier):
    # scikit-learn's digits are ~97% separable by a small MLP
    assert classifier.test_accuracy > 0.93
    train, test = nh.datasets.digits("train").images, nh.datasets.digits("test").images
    same = classifier_frechet_distance(test, train, classifier)
    # negative control: the test images with their pixels shuffled (same pixel marginals)
    perm = np.random.default_rng(0).permutation(64)
    shuffled = np.asarray(test).reshape(-1, 64)[:, perm].reshape(test.shape)
    other = classifier_frechet_distance(shuffled, train, classifier)
    assert other > 10 * same


def test_memorisation_check_flags_copies_and_passes_fresh_data():
    train, test = nh.datasets.digits("train").images, nh.datasets.digits("test").images
    copies = nearest_training_distance(train[:100], train, test)
    np.testing.assert_allclose(copies.sample_distances, 0.0, atol=1e-3)
    assert copies.ratio < 1e-3 and np.array_equal(copies.nearest, np.arange(100))
    fresh = nearest_training_distance(test, train, test)
    assert fresh.ratio == pytest.approx(1.0)


def test_nfe_quality_curve_reports_sliced_w_of_each_nfe():
    # a "sampler" whose error is an exact shift mu / nfe of the reference images: the 1-D W2
    # of every projection is |theta . mu| / nfe, so SW_2 = |mu| / (nfe sqrt(d)) up to the Monte
    # Carlo error of the directions
    from numpyro_hgf.image_metrics import nfe_quality_curve

    reference = nh.datasets.digits("test").images
    mu = 0.8 * np.ones((8, 8), np.float32)
    rows = nfe_quality_curve(
        lambda key, nfe: reference + mu / nfe,
        [1, 4, 16],
        reference,
        jax.random.key(0),
        num_projections=4000,
    )
    assert [r["nfe"] for r in rows] == [1, 4, 16]
    exact = np.linalg.norm(mu) / np.sqrt(64) / np.array([1, 4, 16])
    np.testing.assert_allclose([r["sliced_w"] for r in rows], exact, rtol=0.05)
    with pytest.raises(ValueError, match="nfes: expected a positive integer, got 0"):
        nfe_quality_curve(lambda key, nfe: reference, [0], reference, jax.random.key(0))
