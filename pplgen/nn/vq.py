"""Vector quantisation: the discrete bottleneck of the VQ-VAE.

An encoder's output vector :math:`z_e` is replaced by its nearest entry of a learned codebook
:math:`\\{e_1, \\dots, e_K\\}`. The lookup has no gradient, so the encoder is trained through the
straight-through estimator and two extra losses pull the codebook and the encoder outputs together.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pplgen.errors import DataError

__all__ = ["Quantized", "VectorQuantizer", "code_perplexity"]


class Quantized(NamedTuple):
    """What :class:`VectorQuantizer` returns for vectors ``z_e`` of shape ``(..., D)``.

    Attributes:
        indices: ``(...,)`` int64, the nearest code of each vector.
        quantized: ``(..., D)``, the chosen codebook vectors with the straight-through gradient: their
            values are the codebook entries exactly, their gradient with respect to ``z_e`` the identity.
        codebook_loss: ``(...,)``, :math:`\\lVert \\mathrm{sg}(z_e) - e \\rVert^2`, which moves the codes.
        commitment_loss: ``(...,)``, :math:`\\beta \\lVert z_e - \\mathrm{sg}(e) \\rVert^2`, which keeps
            the encoder near its codes.

    References:
        van den Oord, Vinyals & Kavukcuoglu (2017), "Neural discrete representation learning".
        Bengio, Léonard & Courville (2013), "Estimating or propagating gradients through stochastic
        neurons for conditional computation" (the straight-through estimator).

    Example:
        >>> vq = VectorQuantizer(num_codes=2, code_dim=1)
        >>> with torch.no_grad():
        ...     _ = vq.codebook.copy_(torch.tensor([[0.0], [1.0]]))
        >>> z_e = torch.tensor([[0.2], [0.9]], requires_grad=True)
        >>> out = vq(z_e)
        >>> out.indices.tolist(), out.quantized.tolist()
        ([0, 1], [[0.0], [1.0]])
        >>> [round(v, 4) for v in out.loss.tolist()]  # (1 + beta) times the squared distance
        [0.05, 0.0125]
        >>> out.quantized.sum().backward()
        >>> z_e.grad.tolist()  # straight through
        [[1.0], [1.0]]
    """

    indices: torch.Tensor
    quantized: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        """The sum of both losses, ``(...,)``."""
        return self.codebook_loss + self.commitment_loss


class VectorQuantizer(nn.Module):
    r"""Nearest-neighbour lookup in a codebook of ``num_codes`` vectors of size ``code_dim``.

    For each vector :math:`z_e` the code is :math:`k = \arg\min_j \lVert z_e - e_j \rVert^2`, and the
    quantised vector passed on is

    .. math::
        z_q = \mathrm{sg}(e_k) + z_e - \mathrm{sg}(z_e),

    whose value is :math:`e_k` and whose gradient with respect to :math:`z_e` is the identity (the
    straight-through estimator, written :math:`z_e + \mathrm{sg}(e_k - z_e)` in the paper; this form
    gives the codebook entry bit for bit, so a later lookup of :math:`z_q` finds :math:`k` again). The
    losses are

    .. math::
        \lVert \mathrm{sg}(z_e) - e_k \rVert^2 + \beta \lVert z_e - \mathrm{sg}(e_k) \rVert^2,
        \qquad \beta = 0.25 .

    With ``ema_decay`` set, the codebook is not learned by gradient but follows exponential moving
    averages of the vectors assigned to each code (van den Oord et al. 2017, Appendix A.1):
    :math:`N_k \leftarrow \gamma N_k + (1 - \gamma) n_k`,
    :math:`m_k \leftarrow \gamma m_k + (1 - \gamma) \sum_{i: k_i = k} z_{e,i}`,
    :math:`e_k = m_k / N_k`. Each code starts with a pseudo-count of one at its initial value; an unused
    code's :math:`m_k` and :math:`N_k` then decay together, so it stays where it is, and once
    :math:`N_k` falls below ``eps`` it is no longer divided at all (rather than Laplace smoothing, which
    would pull a long-unused code towards the origin). The update happens in training mode when
    gradients are on (a training step), not during evaluation or checks run under ``torch.no_grad``.
    The codebook loss is then still reported but carries no gradient.

    >>> vq = VectorQuantizer(num_codes=3, code_dim=2)
    >>> out = vq(torch.zeros(5, 4, 2))
    >>> out.indices.shape, out.quantized.shape, out.loss.shape
    (torch.Size([5, 4]), torch.Size([5, 4, 2]), torch.Size([5, 4]))

    References:
        van den Oord, Vinyals & Kavukcuoglu (2017), "Neural discrete representation learning".
        Razavi, van den Oord & Vinyals (2019), "Generating diverse high-fidelity images with VQ-VAE-2".

    Args:
        num_codes: K, the codebook's size.
        code_dim: D, the size of each code vector.
        beta: the commitment loss's weight (0.25 in both papers).
        ema_decay: :math:`\gamma` of the moving-average codebook (0.99 in the papers), or ``None`` to
            learn the codebook by gradient through the codebook loss.
        eps: a moving-average count below which a code keeps its vector unchanged.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        ema_decay: float | None = None,
        eps: float = 1e-5,
    ):
        super().__init__()
        if num_codes < 2 or code_dim < 1:
            raise ValueError(
                f"VectorQuantizer needs num_codes >= 2 and code_dim >= 1, got {num_codes} and {code_dim}"
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"VectorQuantizer: ema_decay must lie in (0, 1), got {ema_decay}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.beta, self.ema_decay, self.eps = beta, ema_decay, eps
        # The scale of the original implementation's uniform initialiser: small codes near the origin,
        # where a freshly initialised encoder's outputs also lie.
        bound = 1.0 / num_codes
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-bound, bound))
        if ema_decay is not None:
            # Moving averages are kept as parameters, not buffers, because pplgen's checkpoints hold a
            # program's parameters; no loss reaches them, so the optimiser never changes them.
            self.cluster_size = nn.Parameter(torch.ones(num_codes))
            self.embed_sum = nn.Parameter(self.codebook.detach().clone())

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The index of the nearest code of each vector: ``(..., D)`` to ``(...,)`` int64."""
        self._check(z)
        flat = z.detach().reshape(-1, self.code_dim)  # (M, D)
        codebook = self.codebook.detach()
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)
        )  # (M, K), expanded so that memory stays M x K
        return distances.argmin(1).reshape(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of ``indices``: ``(...,)`` to ``(..., D)``, without gradient."""
        return self.codebook.detach()[indices]

    def forward(self, z_e: torch.Tensor) -> Quantized:
        indices = self.nearest(z_e)
        e = self.codebook[indices]  # (..., D)
        if self.ema_decay is not None:
            e = e.detach()
        codebook_loss = (z_e.detach() - e).pow(2).sum(-1)
        commitment_loss = self.beta * (z_e - e.detach()).pow(2).sum(-1)
        if self.ema_decay is not None and self.training and torch.is_grad_enabled():
            self._ema_update(z_e.detach().reshape(-1, self.code_dim), indices.reshape(-1))
        quantized = e.detach() + (z_e - z_e.detach())
        return Quantized(indices, quantized, codebook_loss, commitment_loss)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        one_hot = nn.functional.one_hot(indices, self.num_codes).to(flat.dtype)  # (M, K)
        decay = self.ema_decay
        self.cluster_size.mul_(decay).add_(one_hot.sum(0), alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(one_hot.T @ flat, alpha=1 - decay)
        used = self.cluster_size > self.eps
        self.codebook[used] = self.embed_sum[used] / self.cluster_size[used].unsqueeze(1)

    def _check(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or z.dim() < 1 or z.shape[-1] != self.code_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise DataError(f"VectorQuantizer: expected vectors of shape (..., {self.code_dim}), got {got}")


def code_perplexity(indices: torch.Tensor, num_codes: int) -> float:
    r"""How many codes are in use: :math:`\exp(-\sum_k p_k \log p_k)` of the codes' frequencies.

    1 when every vector maps to one code, ``num_codes`` when all are used equally often.

    >>> round(code_perplexity(torch.tensor([0, 1, 2, 3]), num_codes=8), 4)
    4.0
    """
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes).to(torch.float64)
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(entropy.exp())
