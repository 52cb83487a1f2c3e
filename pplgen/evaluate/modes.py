"""Mode coverage of samples from a two-dimensional Gaussian mixture (the ring8 and grid25 data)."""

from __future__ import annotations

import math

import torch

from pplgen.errors import DataError

__all__ = ["mode_metrics"]


def _check_inputs(samples: torch.Tensor, modes: torch.Tensor, std: float, threshold: float) -> None:
    """Raise :class:`DataError` naming the expected and the actual value of a bad argument."""
    if modes.dim() != 2 or modes.shape[0] < 1:
        raise DataError(f"mode_metrics: modes must have shape (M, D) with M >= 1, got {tuple(modes.shape)}")
    dim = modes.shape[1]
    if samples.dim() != 2 or samples.shape[1] != dim:
        raise DataError(f"mode_metrics: samples must have shape (N, {dim}), got {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise DataError(f"mode_metrics: samples must hold at least one sample, got shape (0, {dim})")
    if not std > 0:
        raise DataError(f"mode_metrics: std must be positive, got {std!r}")
    if not threshold > 0:
        raise DataError(f"mode_metrics: threshold must be positive, got {threshold!r}")


def mode_metrics(
    samples: torch.Tensor, modes: torch.Tensor, std: float, *, threshold: float = 3.0
) -> dict[str, float | int]:
    r"""How many modes of a Gaussian mixture the samples cover, and how well, as PacGAN measures it.

    Each sample :math:`x_n` is assigned to its nearest mode :math:`k_n = \arg\min_k \lVert x_n -
    \mu_k\rVert`. It is *high quality* when :math:`\lVert x_n - \mu_{k_n}\rVert \le \tau\sigma`
    (``threshold`` :math:`\tau` standard deviations :math:`\sigma`). A mode is *covered* when it is the
    nearest mode of at least one high-quality sample. With :math:`p_k` the fraction of the high-quality
    samples assigned to mode :math:`k` of :math:`M`, the reverse KL divergence to the uniform mixture
    weights is

    .. math::

        \mathrm{KL}(p \,\|\, u) = \sum_{k: p_k > 0} p_k \log (M p_k),

    zero when the high-quality samples are spread evenly over the modes and :math:`\log M` when they all
    fall on one mode.

    Args:
        samples: the model's samples, shape ``(N, D)`` (``D = 2`` for ring8 and grid25), on any device.
        modes: the mixture's centres, shape ``(M, D)`` (``dataset.meta["modes"]``).
        std: the mixture's standard deviation (``dataset.meta["std"]``).
        threshold: how many standard deviations from its mode a high-quality sample may lie.

    Returns:
        dict: ``"modes"``, the covered modes (int); ``"hq_percent"``, the percentage of high-quality
        samples (float); ``"reverse_kl"``, KL(p || uniform) in nats (float; ``inf`` when no sample is
        high quality).

    Raises:
        DataError: a shape, ``std`` or ``threshold`` is not as described above.

    Example:
        >>> modes = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> mode_metrics(torch.tensor([[1.0, 0.01], [0.9, 0.0]]), modes, std=0.02)
        {'modes': 1, 'hq_percent': 50.0, 'reverse_kl': 0.693...}

    References:
        Srivastava, Valkov, Russell, Gutmann & Sutton (2017), "VEEGAN: reducing mode collapse in GANs
        using implicit variational learning".
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks".
    """
    samples = torch.as_tensor(samples)
    modes = torch.as_tensor(modes)
    std, threshold = float(std), float(threshold)
    _check_inputs(samples, modes, std, threshold)
    dtype = samples.dtype if samples.is_floating_point() else torch.get_default_dtype()
    samples = samples.to(dtype)
    modes = modes.to(samples.device, dtype)
    # exact differences, not the matrix-product shortcut, so points at a mode are at distance 0
    dist = torch.cdist(samples, modes, compute_mode="donot_use_mm_for_euclid_dist")  # (N, M)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    high_quality = nearest_dist <= threshold * std  # (N,)
    counts = torch.bincount(nearest[high_quality], minlength=modes.shape[0]).cpu()  # (M,)
    num_hq = int(counts.sum())
    hq_percent = 100.0 * num_hq / samples.shape[0]
    if num_hq == 0:
        return {"modes": 0, "hq_percent": hq_percent, "reverse_kl": math.inf}
    p = counts[counts > 0].double() / num_hq
    reverse_kl = float((p * (p * modes.shape[0]).log()).sum())
    return {"modes": int((counts > 0).sum()), "hq_percent": hq_percent, "reverse_kl": reverse_kl}
