"""Image sample metrics: Fréchet distance and precision/recall closed forms, and the digits classifier."""

import pytest
import scipy.linalg
import torch

from pplgen.data import load
from pplgen.errors import DataError
from pplgen.evaluate.features import (
    CACHE_ENV,
    FeatureClassifier,
    frechet_distance,
    image_metrics,
    precision_recall,
    train_feature_classifier,
)


def with_moments(num: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """``num`` points whose sample mean and unbiased sample covariance are exactly ``mean`` and ``cov``."""
    z = torch.randn(num, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    white = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample covariance I
    return mean + white @ torch.linalg.cholesky(cov).T


def lattice(offset: float, side: int = 5) -> torch.Tensor:
    """A ``side`` x ``side`` grid of spacing 1 with its corner at ``(offset, 0)``."""
    values = torch.arange(side, dtype=torch.float64)
    return torch.cartesian_prod(values, values) + torch.tensor([offset, 0.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return train_feature_classifier(load("digits", "train"), cache_dir=tmp_path_factory.mktemp("cache"))


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    mean_r, mean_f = torch.tensor([0.0, 1.0, -2.0]).double(), torch.tensor([1.0, 1.0, 0.5]).double()
    var_r, var_f = torch.tensor([1.0, 4.0, 0.25]).double(), torch.tensor([2.0, 1.0, 0.25]).double()
    real = with_moments(200, mean_r, torch.diag(var_r), seed=0)
    fake = with_moments(300, mean_f, torch.diag(var_f), seed=1)
    expected = (mean_r - mean_f).square().sum() + (var_r.sqrt() - var_f.sqrt()).square().sum()
    assert frechet_distance(real, fake) == pytest.approx(float(expected), rel=1e-9)


def test_frechet_distance_agrees_with_scipy_for_correlated_covariances():
    a, b = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    cov_r, cov_f = a @ a.T + 0.1 * torch.eye(4), b @ b.T + 0.1 * torch.eye(4)
    real = with_moments(100, torch.zeros(4, dtype=torch.float64), cov_r, seed=2)
    fake = with_moments(100, torch.ones(4, dtype=torch.float64), cov_f, seed=3)
    root = scipy.linalg.sqrtm((cov_r @ cov_f).numpy()).real
    expected = 4.0 + float(cov_r.trace() + cov_f.trace()) - 2 * float(root.trace())
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(fake, real) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_is_zero_on_identical_sets_and_non_negative():
    # more features than points: singular covariances must not give NaN or a negative distance
    feats = torch.randn(20, 32)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(feats, feats[torch.randperm(20)]) == pytest.approx(0.0, abs=1e-8)
    other = torch.randn(30, 32) * 1.5 + 0.2
    forward, backward = frechet_distance(feats, other), frechet_distance(other, feats)
    assert forward > 0 and forward == pytest.approx(backward, rel=1e-9)


def test_precision_recall_of_identical_sets_is_one():
    feats = torch.randn(100, 8)
    assert precision_recall(feats, feats, k=3) == (1.0, 1.0)


def test_precision_recall_of_a_fake_set_that_covers_one_of_two_clusters():
    # real: two lattices far apart; fake: the first lattice only. Every fake point is a real point
    # (precision 1) and the far lattice lies outside every fake ball (recall 1/2).
    real = torch.cat([lattice(0.0), lattice(100.0)])
    assert precision_recall(real, lattice(0.0), k=3) == (1.0, 0.5)


def test_precision_recall_of_a_fake_set_with_far_outliers():
    # fake: both real lattices plus as many points again far away, whose balls hold no real point
    real = torch.cat([lattice(0.0), lattice(100.0)])
    fake = torch.cat([real, lattice(1000.0), lattice(2000.0)])
    assert precision_recall(real, fake, k=3) == (0.5, 1.0)


def test_precision_recall_balls_use_the_kth_neighbour():
    # balls of the 1st neighbour: [-1, 1], [0, 2], [1, 5], [3, 9]
    # balls of the 2nd neighbour: [-3, 3], [-1, 3], [0, 6], [1, 11]
    real = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    fake = torch.tensor([[-1.5], [4.5], [10.5], [11.5], [30.0]])
    assert precision_recall(real, fake, k=1)[0] == pytest.approx(1 / 5)
    assert precision_recall(real, fake, k=2)[0] == pytest.approx(3 / 5)


def test_bad_features_raise_data_errors():
    with pytest.raises(DataError, match="same feature dimension, got 4 and 5"):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(DataError, match="same feature dimension, got 4 and 5"):
        precision_recall(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(DataError, match="fake_features needs at least 4 rows, got 3"):
        precision_recall(torch.randn(10, 4), torch.randn(3, 4), k=3)
    with pytest.raises(DataError, match="real_features needs at least 2 rows, got 1"):
        frechet_distance(torch.randn(1, 4), torch.randn(3, 4))
    with pytest.raises(DataError, match=r"shape \(N, F\), got \(10,\)"):
        frechet_distance(torch.randn(10), torch.randn(10, 1))
    with pytest.raises(DataError, match="k must be a positive integer, got 0"):
        precision_recall(torch.randn(10, 4), torch.randn(10, 4), k=0)
    with pytest.raises(DataError, match="must be finite"):
        frechet_distance(torch.full((3, 2), float("nan")), torch.randn(3, 2))


def test_the_digits_classifier_is_accurate(classifier):
    assert classifier.accuracy > 0.9
    test = load("digits", "test")
    with torch.no_grad():
        accuracy = (classifier(test.x).argmax(-1) == test.y).float().mean()
    assert float(accuracy) == pytest.approx(classifier.accuracy)
    assert classifier.features(test.x[:5]).shape == (5, classifier.config["feature_dim"])
    rebuilt = FeatureClassifier(**classifier.config)
    rebuilt.load_state_dict(classifier.state_dict())
    assert torch.equal(rebuilt.features(test.x[:5]), classifier.features(test.x[:5]))


def test_held_out_digits_score_better_than_noise(classifier):
    test, valid = load("digits", "test"), load("digits", "valid")
    noise = torch.bernoulli(torch.full((len(valid), 64), 0.5), generator=torch.Generator().manual_seed(0))
    real = image_metrics(valid.x, test, classifier)
    fake = image_metrics(noise, test, classifier)
    assert real["num_samples"] == fake["num_samples"] == len(valid)
    assert real["classifier_accuracy"] == classifier.accuracy
    assert real["fd"] * 3 < fake["fd"]
    assert real["precision"] > 0.8 > fake["precision"] + 0.3
    assert real["recall"] > fake["recall"] + 0.1


def test_the_cache_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    train, x = load("digits", "train"), load("digits", "test").x[:10]
    first = train_feature_classifier(train, epochs=1)
    (path,) = (tmp_path / "features").iterdir()
    written = path.read_bytes()
    second = train_feature_classifier(train, epochs=1)
    assert path.read_bytes() == written  # loaded, not trained and written again
    assert second.accuracy == first.accuracy
    assert torch.equal(second.features(x), first.features(x))
    train_feature_classifier(train, epochs=1, seed=1)
    assert len(list((tmp_path / "features").iterdir())) == 2  # other settings, other entry
    path.write_bytes(b"truncated")
    rebuilt = train_feature_classifier(train, epochs=1)
    assert torch.equal(rebuilt.features(x), first.features(x))


def test_training_is_seeded_and_leaves_the_global_random_state_alone():
    train, x = load("digits", "train"), load("digits", "test").x[:10]
    state = torch.get_rng_state()
    first = train_feature_classifier(train, epochs=1, cache=False)
    assert torch.equal(torch.get_rng_state(), state)
    again = train_feature_classifier(train, epochs=1, cache=False)
    other = train_feature_classifier(train, epochs=1, seed=1, cache=False)
    assert torch.equal(again.features(x), first.features(x))
    assert not torch.allclose(other.features(x), first.features(x))


def test_unlabelled_or_non_image_data_raise_data_errors(classifier):
    digits = load("digits", "train")
    unlabelled = load("digits", "train")
    unlabelled.y = None
    with pytest.raises(DataError, match="need a labelled image data set.*'digits' has no labels"):
        train_feature_classifier(unlabelled, cache=False)
    with pytest.raises(DataError, match="has image_shape None"):
        image_metrics(torch.zeros(5, 2), load("ring8", "test", num_points=50), classifier)
    with pytest.raises(DataError, match=r"expected data of shape \(N, 64\).*got shape \(5, 63\)"):
        image_metrics(torch.zeros(5, 63), digits, classifier)


def test_label_accuracy_scores_samples_against_the_classes_they_were_drawn_for(classifier):
    """Held-out digits under their own labels score as the classifier does; under shifted labels, near 0."""
    valid, test = load("digits", "valid"), load("digits", "test")
    right = image_metrics(valid.x, test, classifier, labels=valid.y)
    wrong = image_metrics(valid.x, test, classifier, labels=(valid.y + 1) % 10)
    assert right["label_accuracy"] > 0.85
    assert wrong["label_accuracy"] < 0.1
    assert "label_accuracy" not in image_metrics(valid.x, test, classifier)
    with pytest.raises(DataError, match=r"labels must have shape \(180,\), got \(3,\)"):
        image_metrics(valid.x, test, classifier, labels=valid.y[:3])
