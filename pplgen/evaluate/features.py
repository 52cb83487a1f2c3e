"""Sample metrics for image models on the features of a classifier that pplgen trains itself.

The Fréchet distance and the k-nearest-neighbour precision and recall compare a model's samples with
held-out data in the feature space of a classifier. The published figures use Inception-v3 features of
ImageNet-sized images; pplgen's image data are small (8x8 digits), so instead of downloading weights it
trains a small convolutional classifier on the data set's own labels, once, and keeps it in a cache
directory (``PPLGEN_CACHE``, else ``~/.cache/pplgen``). Figures from different classifiers are not
comparable, so :func:`image_metrics` reports the classifier's test accuracy with them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from pplgen.errors import DataError
from pplgen.infer.checkpoint import load_checkpoint, save_checkpoint
from pplgen.models.images import image_batch

__all__ = [
    "CACHE_ENV",
    "FeatureClassifier",
    "frechet_distance",
    "image_metrics",
    "precision_recall",
    "train_feature_classifier",
]

#: The environment variable naming the directory where trained feature classifiers are kept.
CACHE_ENV = "PPLGEN_CACHE"
# Rows of a distance matrix computed at once, so that 10^4 points need tens of MB, not GBs.
_CHUNK = 1024


class FeatureClassifier(nn.Module):
    """A small convolutional classifier of single-channel images whose penultimate layer gives features.

    Two 3x3 convolutions with ReLU, average pooling to 4x4, a fully connected layer of ``feature_dim``
    units with ReLU (the features), and a linear layer to the class logits. Pixels (0/1, or levels
    ``0 .. num_levels - 1``) are scaled to ``[0, 1]`` first, so samples given as probabilities work too.

    Args:
        image_shape: (H, W) of one image; data come flat ``(N, H * W)`` or as ``(N, H, W)``.
        num_classes: how many labels.
        num_levels: 2 for binary pixels, else the number of grey levels K.
        channels: channels of the two convolutions.
        feature_dim: size of the feature vector.

    Attributes:
        config: the arguments, as plain data: ``FeatureClassifier(**config)`` rebuilds it.
        accuracy: the test accuracy measured by :func:`train_feature_classifier` (``None`` untrained).

    Example:
        >>> classifier = FeatureClassifier((8, 8), num_classes=3, feature_dim=6)
        >>> images = torch.bernoulli(torch.full((5, 64), 0.5))
        >>> classifier(images).shape, classifier.features(images).shape
        (torch.Size([5, 3]), torch.Size([5, 6]))
        >>> torch.equal(classifier.features(images), classifier.features(images.reshape(5, 8, 8)))
        True
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int,
        num_levels: int = 2,
        channels: Sequence[int] = (16, 32),
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        self.config = {
            "image_shape": [int(s) for s in image_shape],
            "num_classes": int(num_classes),
            "num_levels": int(num_levels),
            "channels": [int(c) for c in channels],
            "feature_dim": int(feature_dim),
        }
        self.accuracy: float | None = None
        c1, c2 = self.config["channels"]
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(16 * c2, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        images = image_batch(x, self.config["image_shape"], "FeatureClassifier")  # (N, H, W)
        if not torch.isfinite(images).all():
            raise DataError("FeatureClassifier: expected finite pixel values, got NaN or inf")
        device = self.head.weight.device
        scaled = images.to(device, torch.float32) / (self.config["num_levels"] - 1)
        return self.body(scaled.unsqueeze(1))  # (N, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape ``(N, num_classes)``."""
        return self.head(self._embed(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features of images ``x`` (flat ``(N, H * W)`` or ``(N, H, W)``): ``(N, F)``."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self._embed(chunk) for chunk in torch.split(x, _CHUNK)])
        finally:
            self.train(was_training)


def _check_labelled_images(dataset) -> None:
    if dataset.image_shape is None or len(dataset.image_shape) != 2:
        raise DataError(
            f"image metrics need a labelled image data set with image_shape (H, W); data set "
            f"{dataset.name!r} has image_shape {dataset.image_shape!r}"
        )
    if dataset.y is None:
        raise DataError(
            f"image metrics need a labelled image data set (labels y to train the feature classifier "
            f"on); data set {dataset.name!r} has no labels"
        )


def _other_split(dataset, split: str):
    """The ``split`` of ``dataset``'s data set, loaded with the same variant."""
    if dataset.split == split:
        return dataset
    from pplgen.data import load

    # The digits' variant (binary or levels) is the only loader option an image data set records.
    options = {"variant": dataset.meta["variant"]} if "variant" in dataset.meta else {}
    return load(dataset.name, split, **options)


def _cache_file(train, settings: dict, cache_dir: str | os.PathLike | None) -> Path:
    """Where the classifier for ``train`` and ``settings`` is kept: keyed by name, settings and the data."""
    root = Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pplgen")
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    # The data themselves are in the key, so a changed split or variant never loads a stale classifier.
    digest.update(train.x.detach().cpu().contiguous().numpy().tobytes())
    digest.update(train.y.detach().cpu().contiguous().numpy().tobytes())
    return root / "features" / f"{train.name}-{digest.hexdigest()[:16]}.pt"


def _accuracy(classifier: FeatureClassifier, data) -> float:
    with torch.no_grad():
        classifier.eval()
        logits = torch.cat([classifier(chunk) for chunk in torch.split(data.x, _CHUNK)])
    return float((logits.argmax(-1).cpu() == data.y.cpu()).float().mean())


def _fit_classifier(train, settings: dict) -> FeatureClassifier:
    """Train a fresh classifier by Adam on cross-entropy, under its own seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        classifier = FeatureClassifier(**settings["architecture"]).to(train.x.device)
        optimiser = torch.optim.Adam(classifier.parameters(), lr=settings["lr"])
        generator = torch.Generator().manual_seed(settings["seed"])
        classifier.train()
        for _ in range(settings["epochs"]):
            order = torch.randperm(len(train), generator=generator).to(train.x.device)
            for batch in torch.split(order, settings["batch_size"]):
                loss = nn.functional.cross_entropy(classifier(train.x[batch]), train.y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    classifier.eval()
    return classifier


def train_feature_classifier(
    dataset,
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    test=None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> FeatureClassifier:
    """Train the feature classifier on a labelled image data set once, or load it from the cache.

    The classifier is trained on ``dataset`` (use the training split) and its accuracy on ``test`` (by
    default the test split of the same data set and variant) is stored as ``classifier.accuracy``. With
    ``cache`` it is saved under ``cache_dir`` (default: the ``PPLGEN_CACHE`` environment variable, else
    ``~/.cache/pplgen``), keyed by the data set's name, these settings and the data themselves, written
    atomically with :func:`torch.save` and loaded with ``torch.load(weights_only=True)``; an unreadable
    cache file is replaced by a fresh training.

    Args:
        dataset: a :class:`pplgen.data.Dataset` of images with labels ``y`` (e.g. ``digits``).
        epochs, batch_size, lr: Adam's training settings.
        seed: makes the training repeatable; the global random state is left as it was.
        test: the split on which accuracy is measured.
        cache: keep the trained classifier on disk and load it from there.
        cache_dir: the cache directory.

    Raises:
        DataError: the data set has no ``image_shape`` (H, W) or no labels (``binarized_mnist``).

    References:
        LeCun, Bottou, Bengio & Haffner (1998), "Gradient-based learning applied to document recognition"
        (the convolutional classifier).

    Example:
        Bars in the upper or lower half of an image are told apart after a few epochs (measured here on
        the training images themselves; nothing is cached):

        >>> from pplgen.data import Dataset
        >>> _ = torch.manual_seed(0)
        >>> top = (torch.arange(8)[:, None] < 4).float().expand(8, 8).flatten()  # upper half lit
        >>> x = torch.stack([top, 1 - top] * 10)  # 20 flat 8x8 images, two classes
        >>> x = (x + torch.bernoulli(torch.full(x.shape, 0.05))) % 2  # a few pixels flipped
        >>> bars = Dataset("bars", "train", "binary", x, torch.tensor([0, 1] * 10), image_shape=(8, 8))
        >>> classifier = train_feature_classifier(bars, epochs=5, test=bars, cache=False)
        >>> classifier.accuracy
        1.0
    """
    _check_labelled_images(dataset)
    test = _other_split(dataset, "test") if test is None else test
    _check_labelled_images(test)
    architecture = {
        "image_shape": list(dataset.image_shape),
        "num_classes": int(max(dataset.y.max(), test.y.max())) + 1,
        "num_levels": 2 if dataset.kind == "binary" else int(dataset.num_levels),
    }
    settings = {"architecture": architecture, "epochs": epochs, "batch_size": batch_size, "lr": lr}
    settings["seed"] = seed
    path = _cache_file(dataset, settings, cache_dir) if cache else None
    if path is not None and path.is_file():
        try:
            state = load_checkpoint(path, map_location=dataset.x.device)
            classifier = FeatureClassifier(**state["config"]).to(dataset.x.device)
            classifier.load_state_dict(state["state_dict"])
            classifier.accuracy = float(state["accuracy"])
            return classifier.eval()
        except Exception:
            # A cache entry is disposable: whatever makes it unreadable (a truncated file makes
            # torch.load raise IndexError, not only CheckpointError), training afresh replaces it.
            pass
    classifier = _fit_classifier(dataset, settings)
    classifier.accuracy = _accuracy(classifier, test.to(dataset.x.device))
    if path is not None:
        state = {"config": classifier.config, "accuracy": classifier.accuracy}
        save_checkpoint(path, {**state, "state_dict": classifier.state_dict()})
    return classifier


def _check_features(real: torch.Tensor, fake: torch.Tensor, caller: str, min_rows: int) -> None:
    for role, feats in (("real_features", real), ("fake_features", fake)):
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise DataError(f"{caller}: {role} must be a tensor of shape (N, F), got {got}")
        if feats.shape[0] < min_rows:
            raise DataError(
                f"{caller}: {role} needs at least {min_rows} rows, got {feats.shape[0]} "
                f"(shape {tuple(feats.shape)})"
            )
        if not torch.isfinite(feats).all():
            raise DataError(f"{caller}: {role} must be finite, got NaN or inf")
    if real.shape[1] != fake.shape[1]:
        raise DataError(
            f"{caller}: real_features and fake_features must have the same feature dimension, got "
            f"{real.shape[1]} and {fake.shape[1]}"
        )


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a positive semi-definite matrix, by its eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    r"""The Fréchet distance between Gaussians fitted to two sets of features (the FID's formula).

    With means :math:`\mu_r, \mu_f` and (unbiased) covariances :math:`\Sigma_r, \Sigma_f`,

    .. math::

        d^2 = \lVert\mu_r - \mu_f\rVert^2 + \operatorname{tr}\bigl(\Sigma_r + \Sigma_f
              - 2(\Sigma_r\Sigma_f)^{1/2}\bigr).

    The trace of the square root is computed in float64 as :math:`\sum_i \sqrt{\lambda_i}` over the
    eigenvalues of the symmetric :math:`\Sigma_r^{1/2}\Sigma_f\Sigma_r^{1/2}`, which is similar to
    :math:`\Sigma_r\Sigma_f`; unlike a general matrix square root it stays real and stable when the
    covariances are singular (fewer points than features).

    Args:
        real_features: ``(N, F)``, at least two rows.
        fake_features: ``(M, F)``, at least two rows.

    Returns:
        :math:`d^2 \ge 0`, as a float (zero for identical sets, up to rounding).

    Raises:
        DataError: not two-dimensional, fewer than two rows, different ``F``, or not finite.

    Example:
        >>> real = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> round(frechet_distance(real, real + 1.0), 6)
        2.0

    References:
        Fréchet (1957), "Sur la distance de deux lois de probabilité".
        Dowson & Landau (1982), "The Fréchet distance between multivariate normal distributions".
        Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter (2017), "GANs trained by a two time-scale
        update rule converge to a local Nash equilibrium".
    """
    _check_features(real_features, fake_features, "frechet_distance", min_rows=2)
    real, fake = real_features.double(), fake_features.to(real_features.device, torch.float64)
    mean_r, mean_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T).reshape(real.shape[1], -1), torch.cov(fake.T).reshape(real.shape[1], -1)
    root_r = _sqrt_psd(cov_r)
    product = root_r @ cov_f @ root_r
    trace_root = torch.linalg.eigvalsh((product + product.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_r - mean_f).square().sum() + cov_r.trace() + cov_f.trace() - 2 * trace_root
    return max(float(distance), 0.0)


def _kth_neighbour_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set, shape ``(N,)``."""
    radii = []
    for chunk in torch.split(points, _CHUNK):
        dist = torch.cdist(chunk, points, compute_mode="donot_use_mm_for_euclid_dist")  # (C, N)
        # the smallest distance is the point to itself (0), so the k-th neighbour is the (k+1)-th smallest
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _fraction_in_manifold(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of ``queries`` inside at least one ball of radius ``radii[j]`` around ``support[j]``."""
    inside = []
    for chunk in torch.split(queries, _CHUNK):
        dist = torch.cdist(chunk, support, compute_mode="donot_use_mm_for_euclid_dist")  # (C, N)
        inside.append((dist <= radii).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3
) -> tuple[float, float]:
    r"""Improved precision and recall: how much of the samples lies on the data's manifold, and back.

    Each set's manifold is the union of balls around its points, each of radius the distance to the
    point's ``k``-th nearest neighbour in the same set. *Precision* is the fraction of fake points inside
    the real manifold (quality); *recall* the fraction of real points inside the fake manifold
    (coverage).

    Args:
        real_features: ``(N, F)``, at least ``k + 1`` rows.
        fake_features: ``(M, F)``, at least ``k + 1`` rows.
        k: the neighbour that sets each ball's radius (the paper uses 3).

    Returns:
        ``(precision, recall)``, each in ``[0, 1]``.

    Raises:
        DataError: bad shapes, different ``F``, too few rows for ``k``, values not finite, or ``k < 1``.

    Example:
        >>> real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        >>> precision_recall(real, torch.tensor([[0.5], [1.5], [2.5], [50.0]]), k=1)
        (0.75, 1.0)

    References:
        Kynkäänniemi, Karras, Laine, Lehtinen & Aila (2019), "Improved precision and recall metric for
        assessing generative models".
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"precision_recall: k must be a positive integer, got {k!r}")
    _check_features(real_features, fake_features, "precision_recall", min_rows=k + 1)
    real, fake = real_features.double(), fake_features.to(real_features.device, torch.float64)
    precision = _fraction_in_manifold(fake, real, _kth_neighbour_radii(real, k))
    recall = _fraction_in_manifold(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def image_metrics(
    samples: torch.Tensor,
    dataset,
    classifier: FeatureClassifier | None = None,
    *,
    num: int = 2000,
    k: int = 3,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, float | int]:
    """Fréchet distance and precision/recall of image samples against ``dataset``, in classifier features.

    What ``pplgen evaluate`` reports for implicit models of labelled image data. The same number of
    points, ``min(num, len(samples), len(dataset))``, is taken from each side (a seeded random subset of
    the data, the first samples), since the Fréchet distance is biased by the sample size.

    Args:
        samples: the model's samples, flat ``(N, H * W)`` or ``(N, H, W)``, in the data's pixel values.
        dataset: the split to compare with (usually test), a labelled image :class:`pplgen.data.Dataset`.
        classifier: the feature classifier; by default :func:`train_feature_classifier` on the training
            split of the same data set (from the cache after the first time).
        num: at most this many points from each side.
        k: the neighbour for :func:`precision_recall`.
        seed: chooses the subset of the data.
        cache_dir: passed to :func:`train_feature_classifier`.
        labels: for a class-conditional model, the class each sample was drawn for, ``(N,)``: adds
            ``label_accuracy``, the share of samples the classifier assigns to that class (the
            conditional-GAN measure of Odena, Olah & Shlens 2017).

    Returns:
        dict: ``"fd"``, ``"precision"``, ``"recall"`` and ``"classifier_accuracy"`` (floats) and
        ``"num_samples"`` (an int), and ``"label_accuracy"`` when ``labels`` are given.

    Raises:
        DataError: the data set is not a labelled image set, or the samples have the wrong shape.

    References:
        Heusel et al. (2017), "GANs trained by a two time-scale update rule converge to a local Nash
        equilibrium".
        Kynkäänniemi et al. (2019), "Improved precision and recall metric for assessing generative models".
        Odena, Olah & Shlens (2017), "Conditional image synthesis with auxiliary classifier GANs".

    Example:
        "Samples" that are the data themselves are at distance 0, with full precision and recall:

        >>> from pplgen.data import Dataset
        >>> _ = torch.manual_seed(0)
        >>> halves = torch.eye(2).repeat_interleave(32, dim=1).repeat(10, 1)  # upper or lower half lit
        >>> x = (halves + torch.bernoulli(torch.full(halves.shape, 0.05))) % 2  # a few pixels flipped
        >>> bars = Dataset("bars", "train", "binary", x, torch.tensor([0, 1] * 10), image_shape=(8, 8))
        >>> classifier = train_feature_classifier(bars, epochs=5, test=bars, cache=False)
        >>> row = image_metrics(bars.x, bars, classifier, k=2)
        >>> abs(row["fd"]) < 1e-3, row["precision"], row["recall"], row["num_samples"]
        (True, 1.0, 1.0, 20)
    """
    _check_labelled_images(dataset)
    if classifier is None:
        classifier = train_feature_classifier(_other_split(dataset, "train"), cache_dir=cache_dir)
    if not isinstance(samples, torch.Tensor) or samples.dim() < 1:
        raise DataError(f"image_metrics: samples must be a tensor of images, got {type(samples).__name__}")
    count = min(num, len(samples), len(dataset))
    real = classifier.features(dataset.subset(count, seed=seed).x)
    fake = classifier.features(samples[:count])
    precision, recall = precision_recall(real, fake, k=k)
    accuracy = math.nan if classifier.accuracy is None else classifier.accuracy
    row = {
        "fd": frechet_distance(real, fake),
        "precision": precision,
        "recall": recall,
        "classifier_accuracy": accuracy,
        "num_samples": count,
    }
    if labels is not None:
        if labels.shape != (len(samples),):
            raise DataError(
                f"image_metrics: labels must have shape ({len(samples)},), got {tuple(labels.shape)}"
            )
        predicted = classifier.head(fake.to(classifier.head.weight.device)).argmax(-1).cpu()
        row["label_accuracy"] = float((predicted == labels[:count].cpu()).float().mean())
    return row
