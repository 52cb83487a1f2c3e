"""Linear probes: how much of a label a representation holds in a form a linear classifier can read.

References:
    Alain & Bengio (2016), "Understanding intermediate layers using linear classifier probes".
    Donahue, Krähenbühl & Darrell (2017), "Adversarial feature learning" (BiGAN codes probed linearly).
    Dumoulin et al. (2017), "Adversarially learned inference" (ALI codes as features).
"""

from __future__ import annotations

import numpy as np
import torch

from pplgen.errors import DataError

__all__ = ["linear_probe"]


def linear_probe(
    train_codes, train_labels, test_codes, test_labels, *, c: float = 1.0, max_iter: int = 2000
) -> float:
    r"""Test accuracy of a multinomial logistic regression fitted on codes of the training data.

    Each code coordinate is standardised with the training codes' mean and standard deviation, then
    scikit-learn's ``LogisticRegression`` (L2 penalty of strength :math:`1 / c`, L-BFGS) fits
    :math:`p(y \mid h) = \mathrm{softmax}(W h + b)` on ``(train_codes, train_labels)``; the return value
    is its accuracy on ``(test_codes, test_labels)``. Codes can be :func:`pplgen.encode`'s posterior
    means, a critic's features, or the raw data (the baseline every representation should beat).

    Args:
        train_codes: ``(N, D)`` codes of the training points (tensor or array).
        train_labels: ``(N,)`` integer labels.
        test_codes: ``(M, D)`` codes of the test points.
        test_labels: ``(M,)`` integer labels.
        c: the inverse L2 penalty strength.
        max_iter: L-BFGS iterations at most.

    Returns:
        The share of test points whose label the probe predicts, in [0, 1].

    Raises:
        DataError: codes not 2-D or of different widths, labels not one per code, NaN, fewer than two
            classes in the training labels.

    Example:
        >>> import torch
        >>> x = torch.cat([torch.zeros(10, 2), torch.ones(10, 2)])
        >>> y = torch.cat([torch.zeros(10), torch.ones(10)]).long()
        >>> linear_probe(x, y, x, y)
        1.0

    References:
        Alain & Bengio (2016), "Understanding intermediate layers using linear classifier probes".
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = _pair(train_codes, train_labels, "train")
    x_test, y_test = _pair(test_codes, test_labels, "test")
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(
            f"train and test codes should have the same width, got {x_train.shape[1]} and {x_test.shape[1]}"
        )
    if len(np.unique(y_train)) < 2:
        raise DataError(f"the training labels should hold at least two classes, got {np.unique(y_train)}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    probe.fit(x_train, y_train)
    return float(probe.score(x_test, y_test))


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _pair(codes, labels, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(N, D)`` as float64 and labels ``(N,)``, checked."""
    x, y = _numpy(codes).astype(np.float64), _numpy(labels)
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"{split} codes should be (N, D) with N >= 1, got shape {x.shape}")
    if y.shape != (len(x),):
        raise DataError(f"{split} labels should be one per code, shape ({len(x)},), got shape {y.shape}")
    if not np.isfinite(x).all():
        raise DataError(
            f"{split} codes hold NaN or infinite values in {int((~np.isfinite(x)).any(1).sum())} rows"
        )
    return x, y
