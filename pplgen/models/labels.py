"""The labels of the zoo's class-conditional models (CVAE, conditional GAN, digit-conditioned WaveNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pplgen.errors import DataError

__all__ = ["one_hot_labels"]


def one_hot_labels(
    y: torch.Tensor | None,
    num_classes: int,
    dtype: torch.dtype,
    *,
    model_name: str,
    num: int | None = None,
    call: str = "model(x, y)",
) -> torch.Tensor:
    """Class labels ``y`` as one-hot rows ``(N, num_classes)`` of ``dtype``, after checking them.

    Args:
        y: integer labels ``0 .. num_classes - 1``, shape ``(N,)``.
        num_classes: the number of classes.
        dtype: the rows' dtype (the model's).
        model_name: the model, as error messages name it.
        num: the number of data points the labels must match (None: any).
        call: how the model is called with labels, for the message when ``y`` is missing.

    Raises:
        DataError: ``y`` is missing, not a 1-D integer tensor of ``num`` labels, or out of range; the
            message gives what was expected and what came.
    """
    rows = "N" if num is None else num
    expected = f"{model_name} expects labels y as integers 0 .. {num_classes - 1} of shape ({rows},)"
    if y is None:
        raise DataError(f"{expected}: call {call} with the labels")
    if y.dim() != 1 or (num is not None and len(y) != num) or y.is_floating_point() or y.dtype == torch.bool:
        raise DataError(f"{expected}, got {y.dtype} of shape {tuple(y.shape)}")
    if y.numel() and not 0 <= int(y.min()) <= int(y.max()) < num_classes:
        raise DataError(f"{expected}, got labels {int(y.min())} .. {int(y.max())}")
    return F.one_hot(y, num_classes).to(dtype)
