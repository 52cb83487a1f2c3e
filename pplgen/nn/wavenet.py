"""WaveNet's network: gated, dilated causal convolutions over quantised audio, with fast generation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pplgen.errors import DataError
from pplgen.nn.autoregressive import AutoregressiveNet, Warp

__all__ = ["WaveNetNet"]

#: One stack of dilations 1, 2, ..., 512: a receptive field of 1024 samples.
DILATIONS = tuple(2**i for i in range(10))


class WaveNetNet(AutoregressiveNet):
    r"""WaveNet: a stack of dilated causal convolutions with gated units, residual and skip connections.

    The levels :math:`x_{<t}` (shifted right by one, a learned start vector in front) are embedded into
    :math:`R` channels :math:`h^{(0)}`. Layer :math:`k`, of dilation :math:`d_k`, computes the gated unit
    (van den Oord et al. 2016, Sections 2.3 and 2.5)

    .. math::
        z^{(k)}_t = \tanh\big(W_{f} * h^{(k)} + V_f c + U_f \tilde y\big)_t \odot
                    \sigma\big(W_{g} * h^{(k)} + V_g c + U_g \tilde y\big)_t,

    a kernel-2 convolution :math:`(W * h)_t = W_0 h_{t-d_k} + W_1 h_t`, with :math:`c` the global
    context (a vector per sequence) and :math:`\tilde y` the local context upsampled to :math:`T` steps.
    Then :math:`h^{(k+1)} = h^{(k)} + 1\times1(z^{(k)})` and the skip sum :math:`s = \sum_k 1\times1(z^{(k)})`
    gives the logits of the :math:`K` levels through ReLU, 1×1, ReLU, 1×1. The logits at :math:`t` see
    the :attr:`receptive_field` samples before :math:`t`, and none after.

    Conditioning travels as one tensor, the network's ``context``: the global vector and the flattened
    local series side by side, ``(B, G + C T_local)``. Build it with :meth:`join_context` and read it back
    with :meth:`split_context`; :class:`pplgen.distributions.wavenet.WaveNet` takes the two parts apart.

    :meth:`generate` keeps a queue of each layer's last :math:`d_k` inputs (Paine et al. 2016), so each
    new sample costs one step of every layer, against a full pass over the sequence for the naive path.

    References:
        van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu (2016),
        "WaveNet: a generative model for raw audio".
        Paine, Khorrami, Chang, Zhang, Ramachandran, Hasegawa-Johnson & Huang (2016), "Fast Wavenet
        generation algorithm".

    Args:
        length: the number of samples T of one sequence.
        num_levels: the quantisation levels K (256 in the paper); at least 3.
        residual_channels: the channels R of the residual stream.
        skip_channels: the channels S of the skip sum and the output layers.
        dilations: each layer's dilation, e.g. ``[2**i for i in range(10)] * 3`` (three stacks).
        global_dim: the size G of a global context vector (speaker, class one-hot), or ``None``.
        local_channels: the channels C of a local context series, or ``None``.
        local_length: the steps T_local of the local series (it is upsampled to T).
        upsample: ``"repeat"`` (each local step held for ``ceil(T / T_local)`` samples) or ``"learned"``
            (a transposed convolution of that stride), cut to T samples.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = WaveNetNet(length=12, num_levels=4, residual_channels=4, skip_channels=4, dilations=[1, 2])
        >>> x = net.relax(torch.randint(4, (1, 12))).requires_grad_()  # one-hot levels
        >>> net(x).shape
        torch.Size([1, 12, 4])
        >>> net(x)[0, 8].sum().backward()
        >>> net.receptive_field, (x.grad[0].abs().sum(-1) > 0).int().tolist()  # step 8 reads 4 .. 7
        (4, [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
        >>> u = torch.rand(2, 12)
        >>> torch.equal(net.generate(u), net.generate_naive(u))  # the queues change nothing
        True
    """

    def __init__(
        self,
        length: int,
        num_levels: int = 256,
        residual_channels: int = 64,
        skip_channels: int = 128,
        dilations: Sequence[int] = DILATIONS,
        global_dim: int | None = None,
        local_channels: int | None = None,
        local_length: int | None = None,
        upsample: str = "repeat",
    ):
        super().__init__()
        dilations = [int(d) for d in dilations]
        if length < 1 or num_levels < 3 or not dilations or min(dilations) < 1:
            raise ValueError(
                f"WaveNetNet expects length >= 1, num_levels >= 3 and positive dilations, got "
                f"length={length}, num_levels={num_levels}, dilations={dilations}"
            )
        if (local_channels is None) != (local_length is None) or upsample not in ("repeat", "learned"):
            raise ValueError(
                "WaveNetNet: give local_channels and local_length together, and upsample 'repeat' or "
                f"'learned'; got {local_channels}, {local_length}, {upsample!r}"
            )
        R, S, L = residual_channels, skip_channels, len(dilations)
        self.event_shape = (length,)
        self.num_levels = num_levels
        self.dilations = dilations
        self.global_dim = global_dim
        self.local_shape = None if local_channels is None else (local_channels, local_length)
        size = (global_dim or 0) + (0 if local_channels is None else local_channels * local_length)
        self.context_shape = (size,) if size else None

        self.embed = nn.Embedding(num_levels, R)  # level -> R channels (a 1x1 convolution of the one-hot)
        self.start = nn.Parameter(torch.zeros(R))  # stands in for the sample before the first
        self.dilated = nn.ModuleList(nn.Conv1d(R, 2 * R, 2, dilation=d) for d in dilations)
        self.skips = nn.ModuleList(nn.Conv1d(R, S, 1) for _ in dilations)
        self.residuals = nn.ModuleList(nn.Conv1d(R, R, 1) for _ in dilations[:-1])  # the last feeds only s
        self.global_map = None if global_dim is None else nn.Linear(global_dim, L * 2 * R)
        self.local_map = None if local_channels is None else nn.Conv1d(local_channels, L * 2 * R, 1)
        self.stride = None if local_length is None else -(-length // local_length)  # ceil(T / T_local)
        self.upsampler = None
        if upsample == "learned" and local_channels is not None:
            self.upsampler = nn.ConvTranspose1d(
                local_channels, local_channels, self.stride, stride=self.stride
            )
        self.head = nn.ModuleList([nn.Conv1d(S, S, 1), nn.Conv1d(S, num_levels, 1)])

    @property
    def receptive_field(self) -> int:
        """The number of past samples that the logits at one step see, :math:`1 + \\sum_k d_k`."""
        return 1 + sum(self.dilations)

    # -- conditioning ------------------------------------------------------------------------------
    def join_context(
        self,
        context: torch.Tensor | None = None,
        local: torch.Tensor | None = None,
        label: str = "WaveNetNet",
    ) -> torch.Tensor | None:
        """The network's one ``context`` tensor from a global ``(..., G)`` and a local ``(..., C, T_local)``.

        The batch dimensions of the two broadcast together; the result is ``(*batch, G + C T_local)``, or
        ``None`` for an unconditional network. Wrong or missing parts raise :class:`DataError`.
        """
        glob = _checked(label, "context", context, None if self.global_dim is None else (self.global_dim,))
        local = _checked(label, "local context", local, self.local_shape)
        present = [(t, dims) for t, dims in ((glob, 1), (local, 2)) if t is not None]  # (part, event dims)
        if not present:
            return None
        try:
            batch = torch.broadcast_shapes(*(t.shape[: t.dim() - k] for t, k in present))
        except RuntimeError:
            shapes = [tuple(t.shape) for t, _ in present]
            raise DataError(
                f"{label}: the context and local context batch shapes do not broadcast: {shapes}"
            ) from None
        flat = [t.expand(batch + t.shape[t.dim() - k :]).reshape(*batch, -1) for t, k in present]
        return torch.cat(flat, -1)

    def split_context(self, context: torch.Tensor | None):
        """The global ``(..., G)`` and local ``(..., C, T_local)`` parts of a joined context, or ``None``."""
        if context is None:
            return None, None
        if self.context_shape is None or context.shape[-1:] != self.context_shape:
            expected = (
                "no context"
                if self.context_shape is None
                else f"a context of shape (..., {self.context_shape[0]})"
            )
            raise DataError(f"WaveNetNet: expected {expected}, got a context of shape {tuple(context.shape)}")
        G = self.global_dim or 0
        glob = context[..., :G] if self.global_dim is not None else None
        local = (
            None
            if self.local_shape is None
            else context[..., G:].reshape(*context.shape[:-1], *self.local_shape)
        )
        return glob, local

    def _conditioning(self, context: torch.Tensor | None):
        """Global biases ``(B, L, 2R)`` and the local series upsampled to ``(B, C, T)`` (or ``None``s)."""
        glob, local = self.split_context(context)
        if (glob is None) != (self.global_dim is None) or (local is None) != (self.local_shape is None):
            raise DataError(
                f"WaveNetNet: expected a context of shape (..., {self.context_shape[0]}), got None"
            )
        if glob is not None:
            glob = self.global_map(glob).reshape(glob.shape[0], len(self.dilations), -1)
        if local is not None:
            up = (
                self.upsampler(local)
                if self.upsampler is not None
                else local.repeat_interleave(self.stride, -1)
            )
            local = up[..., : self.event_shape[0]]
        return glob, local

    # -- the teacher-forced pass -------------------------------------------------------------------
    def relax(self, levels: torch.Tensor) -> torch.Tensor:
        """One-hot floats ``(B, T, K)``, which :meth:`forward` embeds like the levels."""
        return F.one_hot(levels.long(), self.num_levels).to(self.start.dtype)

    def _embedded(self, x: torch.Tensor) -> torch.Tensor:
        """The embedded input shifted right by one step: ``(B, R, T)``; step t holds sample t - 1."""
        T, K = self.event_shape[0], self.num_levels
        if x.is_floating_point() and x.dim() == 3 and tuple(x.shape[1:]) == (T, K):
            emb = x @ self.embed.weight  # (B, T, R)
        elif not x.is_floating_point() and x.dim() == 2 and x.shape[1] == T:
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= K):
                raise DataError(
                    f"WaveNetNet: expected levels 0 .. {K - 1}, got {int(x.min())} .. {int(x.max())}"
                )
            emb = self.embed(x)
        else:
            raise DataError(
                f"WaveNetNet: expected int64 levels of shape (B, {T}) or a float one-hot relaxation "
                f"(B, {T}, {K}), got {x.dtype} of shape {tuple(x.shape)}"
            )
        start = self.start.expand(x.shape[0], 1, -1)  # (B, 1, R)
        return torch.cat([start, emb[:, :-1]], 1).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, K)`` of every step from levels ``(B, T)`` or one-hot floats ``(B, T, K)``."""
        glob, local = self._conditioning(context)
        return self._head(self._stack(self._embedded(x), glob, local))  # (B, T, K)

    def _stack(self, h: torch.Tensor, glob, local, keep: Callable | None = None) -> torch.Tensor:
        """The skip sum ``(B, S, T)`` of the layers run on ``h`` ``(B, R, T)``; ``keep(k, h)`` sees each
        layer's input."""
        skip = 0.0
        two_r = self.dilated[0].out_channels
        for k, conv in enumerate(self.dilated):
            if keep is not None:
                keep(k, h)
            pre = conv(F.pad(h, (conv.dilation[0], 0)))  # (B, 2R, T): causal, kernel 2
            if glob is not None:
                pre = pre + glob[:, k, :, None]
            if local is not None:
                rows = slice(k * two_r, (k + 1) * two_r)
                pre = pre + F.conv1d(local, self.local_map.weight[rows], self.local_map.bias[rows])
            z = _gate(pre)  # (B, R, T)
            skip = skip + self.skips[k](z)  # (B, S, T)
            if k < len(self.residuals):
                h = h + self.residuals[k](z)
        return skip

    # -- fast generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, u: torch.Tensor, context: torch.Tensor | None = None, warp: Warp | None = None):
        """Levels ``(B, T)`` from uniforms ``(B, T)``, one step of every layer per sample.

        Layer :math:`k` keeps its last :math:`d_k` inputs in a circular queue ``(d_k, B, R)``: the input
        :math:`h_{t-d_k}` that its kernel needs at step :math:`t` is read from slot :math:`t \\bmod d_k`,
        which then takes :math:`h_t` (Paine et al. 2016). Zeros stand for steps before the first, as the
        padding of :meth:`forward` does, so both paths compute the same conditionals.

        The two paths round differently (matrix products here, convolutions there), so where a uniform
        falls within rounding error of the boundary between two levels they could choose differently.
        One teacher-forced pass therefore checks every choice; at the first disagreement the pass's
        choice is kept, the queues are refilled from the pass, and generation resumes there. The result
        is exactly :meth:`generate_naive`'s. Disagreements are rare in float32 (one in 8,192 steps in a
        CPU test); convolutions in TF32 (``torch.backends.cudnn.allow_tf32``, on by default on GPUs)
        make them, and the repairs, more frequent.
        """
        batch, T = u.shape
        glob, local = self._conditioning(context)
        plan = self._step_layers(glob, batch)
        queues = [self.start.new_zeros(d, batch, self.start.shape[0]) for d in self.dilations]
        levels = torch.zeros_like(u, dtype=torch.long)  # (B, T)
        start = 0
        while start < T:
            self._run_queues(levels, u, start, plan, queues, local, warp)
            logits = self._head(self._stack(self._embedded(levels), glob, local))  # (B, T, K)
            check = self.pick_at(logits.flatten(0, 1), u.flatten(), warp).reshape(batch, T)
            wrong = (check != levels).any(0).nonzero()
            if len(wrong) == 0:
                break
            start = int(wrong[0]) + 1
            levels[:, start - 1] = check[:, start - 1]  # every row agrees with the naive path up to here
            self._refill(queues, levels, start, glob, local)
        return levels

    def _run_queues(self, levels, u, start: int, plan, queues, local, warp) -> None:
        """Fill ``levels[:, start:]`` one step at a time through the queues."""
        batch, T = u.shape
        for t in range(start, T):
            h = self.start.expand(batch, -1) if t == 0 else self.embed(levels[:, t - 1])  # (B, R)
            extra = None  # every layer's local bias at step t: (B, L, 2R)
            if local is not None:
                extra = F.linear(local[..., t], *_matrix(self.local_map)).reshape(batch, len(queues), -1)
            skip = self._step(h, t, plan, queues, extra)
            levels[:, t] = self.pick_at(self._head_step(skip), u[:, t], warp)

    def _refill(self, queues, levels: torch.Tensor, start: int, glob, local) -> None:
        """Put each layer's inputs at steps ``start - d_k .. start - 1`` in its queue, from a teacher-forced
        pass over the first ``start`` steps."""

        def keep(k: int, h: torch.Tensor) -> None:  # h: layer k's inputs (B, R, start)
            d = self.dilations[k]
            steps = torch.arange(max(0, start - d), start, device=h.device)
            queues[k].zero_()
            queues[k][steps % d] = h[:, :, steps].permute(2, 0, 1)

        self._stack(
            self._embedded(levels)[..., :start], glob, None if local is None else local[..., :start], keep
        )

    def _step_layers(self, glob: torch.Tensor | None, batch: int) -> tuple[list[tuple], torch.Tensor]:
        """Each layer's matrices for one step (dilation, past and current taps ``(R, 2R)``, gate bias
        ``(B, 2R)``, skip map ``(R, S)``, residual map ``(R, R)`` and bias, ``None`` for the last layer),
        and the sum of the skip biases, so that the skip sum is one accumulating product per layer."""
        layers = []
        for k, conv in enumerate(self.dilated):
            bias = conv.bias.expand(batch, -1)  # (B, 2R)
            if glob is not None:
                bias = bias + glob[:, k]
            res, res_bias = _matrix(self.residuals[k]) if k < len(self.residuals) else (None, None)
            past, now = conv.weight[..., 0].T, conv.weight[..., 1].T
            skip = _matrix(self.skips[k])[0].T
            layers.append((conv.dilation[0], past, now, bias, skip, None if res is None else res.T, res_bias))
        return layers, sum(skip.bias for skip in self.skips)

    def _step(self, h: torch.Tensor, t: int, plan: tuple, queues: list[torch.Tensor], extra) -> torch.Tensor:
        """Run every layer on the one new input ``h`` ``(B, R)`` at step ``t``; the skip sum ``(B, S)``."""
        layers, skip = plan
        R = h.shape[1]
        for k, ((d, past, now, bias, skip_map, res, res_bias), queue) in enumerate(
            zip(layers, queues, strict=True)
        ):
            slot = queue[t % d]  # (B, R): this layer's input d steps ago
            pre = torch.addmm(bias if extra is None else bias + extra[:, k], slot, past).addmm_(h, now)
            slot.copy_(h)
            z = torch.tanh(pre[:, :R]).mul_(torch.sigmoid(pre[:, R:]))  # (B, R): the gated unit
            skip = torch.addmm(skip, z, skip_map) if k == 0 else skip.addmm_(z, skip_map)
            if res is not None:  # every layer but the last adds its residual
                h = torch.addmm(res_bias, z, res).add_(h)
        return skip

    def _head(self, skip: torch.Tensor) -> torch.Tensor:
        """The output layers on the skip sums ``(B, S, T)``: logits ``(B, T, K)``."""
        hidden = self.head[0](torch.relu(skip))
        return self.head[1](torch.relu(hidden)).transpose(1, 2)

    def _head_step(self, skip: torch.Tensor) -> torch.Tensor:
        """The output layers on one step's skip sum ``(B, S)``: logits ``(B, K)``."""
        hidden = F.linear(torch.relu(skip), *_matrix(self.head[0]))
        return F.linear(torch.relu(hidden), *_matrix(self.head[1]))


def _gate(pre: torch.Tensor) -> torch.Tensor:
    """The gated unit :math:`\\tanh(f) \\odot \\sigma(g)` of the channel halves of ``pre`` (B, 2R, T)."""
    f, g = pre.chunk(2, 1)
    return torch.tanh(f) * torch.sigmoid(g)


def _matrix(conv: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 convolution's weight as a matrix ``(out, in)``, and its bias."""
    return conv.weight[..., 0], conv.bias


def _checked(label: str, what: str, value, shape: tuple[int, ...] | None) -> torch.Tensor | None:
    """``value`` checked to end in ``shape`` (``None``: no such input is taken)."""
    if shape is None:
        if value is not None:
            raise DataError(
                f"{label}: the network takes no {what}, got a {what} of shape {tuple(value.shape)}"
                if isinstance(value, torch.Tensor)
                else f"{label}: the network takes no {what}, got {type(value).__name__}"
            )
        return None
    dims = ", ".join(str(s) for s in shape)
    if value is None:
        raise DataError(f"{label}: the network needs a {what} of shape (..., {dims})")
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{label}: the {what} should be a tensor, got {type(value).__name__}")
    if value.dim() < len(shape) or tuple(value.shape[value.dim() - len(shape) :]) != shape:
        raise DataError(f"{label}: expected a {what} of shape (..., {dims}), got shape {tuple(value.shape)}")
    return value
