"""t-SNE: calibration and gradient by their definitions, the result against scikit-learn's."""
import jax
import numpy as np
import pytest

from sbirjax.tools import tsne


def test_every_row_has_the_requested_perplexity():
    x = np.random.default_rng(0).normal(size=(80, 5)) * np.linspace(0.1, 3.0, 80)[:, None]
    p, beta = tsne.conditional_probabilities(tsne.squared_distances(x), perplexity=12.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diag(p) == 0.0)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    np.testing.assert_allclose(np.exp(entropy), 12.0, rtol=1e-8)
    assert np.all(beta > 0)


@pytest.mark.slow
def test_gradient_equals_autodiff_of_the_kl_divergence():
    rng = np.random.default_rng(1)
    p = tsne.joint_probabilities(rng.normal(size=(30, 4)), perplexity=8.0)
    with jax.enable_x64(True):
        y = jax.numpy.asarray(rng.normal(size=(30, 2)))
        analytic = np.asarray(tsne.gradient(p, y))
        autodiff = np.asarray(jax.grad(lambda v: tsne.kl_divergence(p, v))(y))
    np.testing.assert_allclose(analytic, autodiff, rtol=1e-6, atol=1e-10)


@pytest.mark.slow
def test_matches_scikit_learn_exact_tsne():
    """Same objective value and neighbourhood preservation as sklearn's exact t-SNE."""
    datasets = pytest.importorskip("sklearn.datasets")
    manifold = pytest.importorskip("sklearn.manifold")
    x = datasets.load_digits().data[:300]
    y, info = tsne.embed(x, perplexity=20.0)
    ref = manifold.TSNE(perplexity=20.0, method="exact", init="pca", random_state=0)
    y_ref = ref.fit_transform(x)
    assert info["kl"] == pytest.approx(ref.kl_divergence_, rel=0.05)
    ours = manifold.trustworthiness(x, y, n_neighbors=10)
    theirs = manifold.trustworthiness(x, y_ref, n_neighbors=10)
    assert ours > theirs - 0.01, (ours, theirs)
    assert ours > 0.95


def test_separated_clusters_stay_separated():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 10)) * 20
    x = np.concatenate([c + rng.normal(size=(25, 10)) for c in centres])
    y, _ = tsne.embed(x, perplexity=10.0, iters=500)
    labels = np.repeat(np.arange(4), 25)
    d = tsne.squared_distances(y)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) == 1.0


@pytest.mark.parametrize("x, match", [(np.zeros((2, 3)), "n >= 3"), (np.zeros(5), "n >= 3"),
                                      (np.full((5, 2), np.nan), "non-finite")])
def test_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        tsne.embed(x)
