"""PixelCNN networks over single-channel images, with cached generation.

Two bodies share one output head: the gated PixelCNN (vertical and horizontal stacks, no blind spot)
and the original PixelCNN (a mask-A convolution and residual blocks of mask-B convolutions). Both
generate a pixel at a time from cached activations: an activation at a pixel depends only on the
pixels before it in raster order, so once computed it never changes, and each step computes every
layer at the new pixel alone (Ramachandran et al. 2017). The gated net computes its vertical stack a
row at a time, when the row above is complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pplgen.errors import DataError
from pplgen.nn.autoregressive import AutoregressiveNet, Warp

__all__ = ["MaskedConv2d", "PixelCNNNet", "gate"]


def gate(x: torch.Tensor) -> torch.Tensor:
    """The gated activation :math:`\\tanh(a) \\odot \\sigma(b)` of the two halves of dimension 1."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _pointwise(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 convolution's weight and bias as a linear map on ``(B, C)`` vectors."""
    return conv.weight[:, :, 0, 0], conv.bias


class MaskedConv2d(nn.Conv2d):
    """A square convolution whose output at a pixel sees only the pixels before it in raster order.

    Mask ``"A"`` hides the centre pixel as well (the first layer, which must not see the pixel it
    predicts); mask ``"B"`` lets it through (later layers, whose centre already depends only on earlier
    pixels). Zero padding keeps the image size.

    >>> conv = MaskedConv2d(1, 4, kernel_size=3, mask_type="A")
    >>> conv.mask
    tensor([[1., 1., 1.],
            [1., 0., 0.],
            [0., 0., 0.]])
    >>> conv(torch.zeros(2, 1, 5, 6)).shape
    torch.Size([2, 4, 5, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str):
        if mask_type not in ("A", "B") or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"MaskedConv2d needs mask 'A' or 'B' and an odd kernel, got {mask_type!r}, {kernel_size}"
            )
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.ones(kernel_size, kernel_size)
        mask[centre, centre + (mask_type == "B") :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def causal_matrix(self) -> torch.Tensor:
        """The masked weight over the rows up to the centre, ``(in * (k // 2 + 1) * k, out)``."""
        rows = self.kernel_size[0] // 2 + 1
        return (self.weight * self.mask)[:, :, :rows].reshape(self.out_channels, -1).T


class _GatedLayer(nn.Module):
    """One gated layer: a vertical stack over the rows up to this one, a horizontal stack over the
    pixels to the left in this row, and a link from the vertical stack of the row above."""

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool, last: bool, context_dim):
        super().__init__()
        self.half, self.first = kernel // 2, first
        self.width = self.half if first else self.half + 1  # the first sees strictly left of the pixel
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.width))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.skip = nn.Conv2d(channels, channels, 1)
        self.residual = None if last else nn.Conv2d(channels, channels, 1)
        self.context = None if context_dim is None else nn.Linear(context_dim, 4 * channels)

    def context_biases(self, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The context's biases of the vertical and horizontal pre-activations, ``(B, 2C)`` each
        (``(1, 2C)`` zeros without a context)."""
        if self.context is None:
            zeros = self.link.bias.new_zeros(1, self.link.out_channels)
            return zeros, zeros
        return self.context(context).chunk(2, dim=1)

    def forward(self, v: torch.Tensor, h: torch.Tensor, context: torch.Tensor | None):
        cv, ch = self.context_biases(context)
        half = self.half
        v_pre = self.vertical(F.pad(v, (half, half, half, 0))) + _image(cv)  # (B, 2C, H, W): rows i-half..i
        h_pad = F.pad(h, (half, -1)) if self.first else F.pad(h, (half, 0))  # columns before (or up to) j
        h_pre = self.horizontal(h_pad) + _image(ch) + self.link(F.pad(v_pre, (0, 0, 1, -1)))  # the row above
        g = gate(h_pre)  # (B, C, H, W)
        if self.residual is not None:
            h = self.residual(g) if self.first else h + self.residual(g)
        return gate(v_pre), h, self.skip(g)


def _image(bias: torch.Tensor) -> torch.Tensor:
    """A ``(B, C)`` bias as ``(B, C, 1, 1)``, to add to feature maps."""
    return bias[:, :, None, None]


class _ResidualBlock(nn.Module):
    """The original PixelCNN's block: ReLU, 1x1 (2h to h), ReLU, k x k mask B, ReLU, 1x1 (h to 2h), plus
    the input (van den Oord et al. 2016a, Figure 5)."""

    def __init__(self, channels: int, kernel: int, context_dim):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 2, 1)
        self.conv = MaskedConv2d(channels // 2, channels // 2, kernel, "B")
        self.expand = nn.Conv2d(channels // 2, channels, 1)
        self.context = None if context_dim is None else nn.Linear(context_dim, channels // 2)

    def forward(self, r: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        t = self.conv(F.relu(self.reduce(F.relu(r))))
        if self.context is not None:
            t = t + _image(self.context(context))
        return r + self.expand(F.relu(t))


class PixelCNNNet(AutoregressiveNet):
    r"""PixelCNN over single-channel images of ``image_shape`` (H, W), in raster order.

    .. math::
        p(x \mid c) = \prod_{i=1}^{H} \prod_{j=1}^{W} p(x_{ij} \mid x_{<ij}, c)

    with every conditional computed at once by convolutions masked so that the output at a pixel sees
    only the pixels before it. The input is the levels scaled into [0, 1].

    ``gated=True``: the gated PixelCNN. A vertical stack of :math:`(k/2 + 1) \times k` convolutions sees
    the rows up to the current one; a horizontal stack of :math:`1 \times (k/2 + 1)` convolutions sees
    the pixels to the left in the current row; the vertical stack feeds the horizontal one through a
    1x1 link after a one-row shift, so nothing below or to the right leaks in and no pixel above is
    missed (no blind spot). Each layer is gated,

    .. math::
        y = \tanh(W_f * x + V_f^\top c) \odot \sigma(W_g * x + V_g^\top c),

    with a residual 1x1 connection in the horizontal stack and a 1x1 skip connection from every layer
    into the output.

    ``gated=False``: the original PixelCNN: a :math:`7 \times 7` mask-A convolution, residual blocks of
    :math:`3 \times 3` mask-B convolutions with ReLU, then two 1x1 layers. Stacked masked convolutions
    leave a blind spot above and to the right of each pixel.

    Both end with ReLU, 1x1 to ``hidden``, ReLU, 1x1 to one logit (binary) or K logits per pixel.
    :meth:`generate` caches activations and computes every layer at the new pixel alone, which gives
    the same levels as :meth:`generate_naive` at a fraction of the cost.

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016a), "Pixel recurrent neural networks".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016b), "Conditional image
        generation with PixelCNN decoders".
        Ramachandran, Paine, Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell & Huang
        (2017), "Fast generation for convolutional autoregressive models".

    Args:
        image_shape: (H, W).
        num_levels: 2 for binary pixels (float 0/1, one logit each), else K (int64 levels, K logits).
        channels: feature maps per stack (gated) or of the residual stream, 2h (original; its blocks
            work at h = channels / 2).
        layers: gated layers, or masked convolutions (the first and one per residual block).
        gated: the gated PixelCNN (True) or the original (False).
        context_dim: the size of a conditioning vector (a class one-hot, a latent code), which enters
            every layer as a learned bias; ``None`` for an unconditional network.
        kernel_size: k of the later layers (odd).
        first_kernel_size: k of the first layer (odd; 7 in both papers).
        hidden: the width of the output 1x1 layer; ``None`` for ``channels``.

    Example:
        Which pixels the logit at row 1, column 1 reads, for each body:

        >>> _ = torch.manual_seed(0)
        >>> for gated in (True, False):
        ...     net = PixelCNNNet((4, 4), channels=4, layers=2, gated=gated, first_kernel_size=3)
        ...     x = torch.rand(1, 4, 4, requires_grad=True)
        ...     net(x)[0, 1, 1].backward()
        ...     print(gated, (x.grad[0] != 0).int().tolist())
        True [[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
        False [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]

        The original misses the pixel above and to the right (the blind spot). Cached generation gives
        the naive path's levels:

        >>> u = torch.rand(2, 4, 4)
        >>> torch.equal(net.generate(u), net.generate_naive(u))
        True
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_levels: int = 2,
        channels: int = 64,
        layers: int = 10,
        gated: bool = True,
        context_dim: int | None = None,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        hidden: int | None = None,
    ):
        super().__init__()
        _check_arguments(image_shape, num_levels, channels, layers, kernel_size, first_kernel_size, gated)
        self.event_shape = tuple(int(s) for s in image_shape)
        self.num_levels = num_levels
        self.context_shape = None if context_dim is None else (context_dim,)
        self.gated = gated
        kernels = [first_kernel_size] + [kernel_size] * (layers - 1)
        if gated:
            self.layers = nn.ModuleList(
                _GatedLayer(1 if i == 0 else channels, channels, k, i == 0, i == layers - 1, context_dim)
                for i, k in enumerate(kernels)
            )
        else:
            self.first = MaskedConv2d(1, channels, first_kernel_size, "A")
            self.first_context = None if context_dim is None else nn.Linear(context_dim, channels)
            self.layers = nn.ModuleList(_ResidualBlock(channels, k, context_dim) for k in kernels[1:])
        hidden = channels if hidden is None else hidden
        outputs = 1 if num_levels == 2 else num_levels
        self.head = nn.Sequential(
            nn.ReLU(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, outputs)
        )

    def scale(self, levels: torch.Tensor) -> torch.Tensor:
        """Levels (int or float) as the network's input, scaled into [0, 1]."""
        x = levels.to(self.head[1].weight.dtype)
        return x if self.num_levels == 2 else x / (self.num_levels - 1)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        out = self.head(features)  # (..., 1 or K)
        return out.squeeze(-1) if self.num_levels == 2 else out

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, context)
        inp = self.scale(x).unsqueeze(1)  # (B, 1, H, W)
        if self.gated:
            v, h, skip = inp, inp, 0
            for layer in self.layers:
                v, h, s = layer(v, h, context)
                skip = skip + s
            features = skip  # (B, C, H, W)
        else:
            features = self.first(inp)  # (B, C, H, W)
            if self.first_context is not None:
                features = features + _image(self.first_context(context))
            for block in self.layers:
                features = block(features, context)
        return self._logits(features.permute(0, 2, 3, 1))  # (B, H, W) or (B, H, W, K)

    def _check_input(self, x: torch.Tensor, context: torch.Tensor | None) -> None:
        height, width = self.event_shape
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or tuple(x.shape[1:]) != self.event_shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"PixelCNNNet: expected images of shape (B, {height}, {width}), got {got}")
        if self.context_shape is None:
            if context is not None:
                raise DataError("PixelCNNNet: the network takes no context, got one")
        elif context is None or tuple(context.shape) != (x.shape[0], *self.context_shape):
            got = None if context is None else tuple(context.shape)
            raise DataError(
                f"PixelCNNNet: expected a context of shape ({x.shape[0]}, {self.context_shape[0]}), got {got}"
            )

    @torch.no_grad()
    def generate(self, u: torch.Tensor, context: torch.Tensor | None = None, warp: Warp | None = None):
        """Levels ``(B, H, W)`` from uniforms ``(B, H, W)``, computing each layer at the new pixel only."""
        height, width = self.event_shape
        levels = torch.zeros(u.shape, dtype=torch.long, device=u.device)  # (B, H, W)
        run = (_GatedRun if self.gated else _MaskedRun)(self, u.shape[0], context)
        for i in range(height):
            run.begin_row(i)
            for j in range(width):
                logits = self._logits(run.features_at(i, j))  # (B,) or (B, K)
                levels[:, i, j] = level = self.pick_at(logits, u[:, i, j], warp)
                run.put(i, j, level if self.num_levels == 2 else self.scale(level))  # 0/1 cast on writing
        return levels


def _check_arguments(image_shape, num_levels, channels, layers, kernel_size, first_kernel_size, gated):
    shape = tuple(image_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"PixelCNNNet: image_shape must be (H, W) with H, W >= 1, got {shape}")
    if num_levels < 2 or layers < 1 or channels < (1 if gated else 2):
        raise ValueError(
            f"PixelCNNNet: needs num_levels >= 2, layers >= 1 and channels >= {1 if gated else 2}, "
            f"got num_levels={num_levels}, layers={layers}, channels={channels}"
        )
    for name, k in (("kernel_size", kernel_size), ("first_kernel_size", first_kernel_size)):
        if k < 3 or k % 2 == 0:
            raise ValueError(f"PixelCNNNet: {name} must be odd and at least 3, got {k}")


class _GatedRun:
    """The caches of one cached generation with the gated net, all preallocated.

    ``planes[l]``: layer ``l``'s vertical input ``(B, C_in, H + k/2, W + 2 (k/2))``, zero padded, filled
    a row at a time. ``rows[l]``: its horizontal input in the current row, ``(B, k/2 + W, C_in)``,
    channels last so that a window of columns is a view (``rows[0]`` holds the pixels). ``bias[l]``:
    ``(B, W, 2C)``, the horizontal pre-activation's bias plus the link from the row above and the
    context. Every per-pixel operation writes into these buffers through views made once, so a step
    costs a few kernels per layer and no allocation or indexing.
    """

    def __init__(self, net: PixelCNNNet, batch: int, context: torch.Tensor | None):
        height, width = net.event_shape
        self.layers, self.width = list(net.layers), width
        channels, depth = self.layers[0].skip.in_channels, len(self.layers)
        new = dict(dtype=net.head[1].weight.dtype, device=net.head[1].weight.device)
        self.planes, self.rows, weights = [], [], []
        for layer in self.layers:
            c_in, half = layer.vertical.in_channels, layer.half
            self.planes.append(torch.zeros(batch, c_in, height + half, width + 2 * half, **new))
            self.rows.append(torch.zeros(batch, half + width, c_in, **new))
            weight = layer.horizontal.weight[:, :, 0].transpose(1, 2)  # (2C, taps, C_in)
            weights.append(weight.reshape(weight.shape[0], -1).T)  # (taps * C_in, 2C)
        self.bias = torch.zeros(depth, batch, width, 2 * channels, **new)
        self.pre = torch.zeros(batch, 2 * channels, **new)  # one layer's pre-activation at the pixel
        self.halves = self.pre.chunk(2, dim=1)
        self.tanh, self.sigmoid = torch.zeros(2, batch, channels, **new)
        self.gated = torch.zeros(batch, depth * channels, **new)  # every layer's gate output at the pixel
        skips = [layer.skip.weight[:, :, 0, 0] for layer in self.layers]
        self.skip_weight, self.skip_bias = torch.cat(skips, 1), sum(layer.skip.bias for layer in self.layers)
        self.contexts = [layer.context_biases(context) for layer in self.layers]  # (B or 1, 2C) each
        self.folded = self._folded_biases(width)
        self.steps = [[self._step(index, j, weights[index]) for index in range(depth)] for j in range(width)]
        self.pixels = [self.rows[0][:, self.layers[0].half + j, 0] for j in range(width)]  # (B,) views

    def _step(self, index: int, j: int, weight: torch.Tensor) -> tuple:
        """Layer ``index`` at column ``j``: its bias, input window, weight, gate output, and where its
        output h goes (the next layer's row), with the residual's input and weight."""
        layer, row, channels = self.layers[index], self.rows[index], self.pre.shape[1] // 2
        window = row[:, j : j + layer.width].reshape(row.shape[0], -1)  # (B, taps * C_in), a view
        g = self.gated[:, index * channels : (index + 1) * channels]
        if layer.residual is None:
            return self.bias[index, :, j], window, weight, g, None, None, None
        slot = self.rows[index + 1][:, self.layers[index + 1].half + j]  # (B, C)
        base = None if layer.first else row[:, layer.half + j]  # the residual connection's input
        return self.bias[index, :, j], window, weight, g, slot, base, layer.residual.weight[:, :, 0, 0].T

    def _folded_biases(self, width: int) -> list[torch.Tensor | float]:
        r"""What the residual biases add to each layer's horizontal pre-activation, ``(W, 2C)`` a layer.

        The rows hold :math:`\hat h_l = h_l - \beta_l`, the horizontal stack less the sum
        :math:`\beta_l` of the residual biases so far, which saves an addition per layer and pixel. A
        layer's convolution then misses :math:`\sum_t W_t \beta` over those of its taps that fall
        inside the image, a constant per column, which the row bias adds back.
        """
        beta, folded = self.layers[0].skip.bias.new_zeros(self.layers[0].skip.in_channels), [0.0]
        for layer, previous in zip(self.layers[1:], self.layers[:-1], strict=True):
            beta = beta + previous.residual.bias  # (C,)
            per_tap = torch.einsum("oct,c->to", layer.horizontal.weight[:, :, 0], beta)  # (taps, 2C)
            column = torch.arange(width, device=beta.device)[:, None] - layer.half  # of each row's first tap
            inside = column + torch.arange(layer.width, device=beta.device) >= 0  # (W, taps)
            folded.append(inside.to(beta.dtype) @ per_tap)
        return folded

    def begin_row(self, i: int) -> None:
        """Run the vertical stack over row ``i - 1``, now complete, and set row ``i``'s horizontal biases."""
        if i > 0:
            half = self.layers[0].half
            self.planes[0][:, 0, i - 1 + half, half : half + self.width] = self.rows[0][:, half:, 0]
        for index, layer in enumerate(self.layers):
            cv, ch = self.contexts[index]
            link_w, link_b = _pointwise(layer.link)
            bias = (link_b + layer.horizontal.bias + ch)[:, None] + self.folded[index]  # (B or 1, W or 1, 2C)
            if i == 0:  # the one-row shift brings zeros into the top row
                self.bias[index] = bias
                continue
            window = self.planes[index][:, :, i - 1 : i + layer.half]  # rows i-1-k/2 .. i-1
            above = F.conv2d(window, layer.vertical.weight, layer.vertical.bias)[:, :, 0] + cv[:, :, None]
            if index + 1 < len(self.layers):
                half = self.layers[index + 1].half
                self.planes[index + 1][:, :, i - 1 + half, half : half + above.shape[-1]] = gate(above)
            self.bias[index] = torch.einsum("oc,bcw->bwo", link_w, above) + bias  # (B, W, 2C)

    def features_at(self, i: int, j: int) -> torch.Tensor:
        """The skip sum ``(B, C)`` at pixel (i, j), every layer computed at that pixel alone."""
        a, b = self.halves
        for bias, window, weight, g, slot, base, residual in self.steps[j]:
            torch.addmm(bias, window, weight, out=self.pre)
            torch.mul(torch.tanh(a, out=self.tanh), torch.sigmoid(b, out=self.sigmoid), out=g)
            if slot is None:
                continue
            if base is None:  # h less its biases, straight into the next layer's row
                torch.mm(g, residual, out=slot)
            else:
                torch.addmm(base, g, residual, out=slot)
        return F.linear(self.gated, self.skip_weight, self.skip_bias)

    def put(self, i: int, j: int, value: torch.Tensor) -> None:
        self.pixels[j].copy_(value)


class _MaskedRun:
    """The caches of one cached generation with the original net: every masked convolution's input as
    a zero-padded plane ``(B, C_in, H + k/2, W + 2 (k/2))``, filled a pixel at a time."""

    def __init__(self, net: PixelCNNNet, batch: int, context: torch.Tensor | None):
        height, width = net.event_shape
        self.convs = [net.first] + [block.conv for block in net.layers]
        new = dict(dtype=net.first.weight.dtype, device=net.first.weight.device)
        self.planes = [
            torch.zeros(batch, conv.in_channels, height + conv.padding[0], width + 2 * conv.padding[0], **new)
            for conv in self.convs
        ]
        self.matrices = [conv.causal_matrix() for conv in self.convs]  # (C_in * rows * k, C_out)
        self.biases = [conv.bias.expand(batch, -1) for conv in self.convs]
        contexts = [net.first_context] + [block.context for block in net.layers]
        self.biases = [b if c is None else b + c(context) for b, c in zip(self.biases, contexts, strict=True)]
        self.blocks = [(_pointwise(block.reduce), _pointwise(block.expand)) for block in net.layers]

    def begin_row(self, i: int) -> None:
        pass

    def _conv_at(self, index: int, i: int, j: int) -> torch.Tensor:
        plane, k = self.planes[index], self.convs[index].kernel_size[0]
        window = plane[:, :, i : i + k // 2 + 1, j : j + k].reshape(plane.shape[0], -1)
        return torch.addmm(self.biases[index], window, self.matrices[index])

    def features_at(self, i: int, j: int) -> torch.Tensor:
        """The residual stream ``(B, C)`` at pixel (i, j), every layer computed at that pixel alone."""
        r = self._conv_at(0, i, j)  # (B, C)
        for index, (reduce, expand) in enumerate(self.blocks, start=1):
            half = self.convs[index].padding[0]
            self.planes[index][:, :, i + half, j + half] = F.relu(F.linear(F.relu(r), *reduce))
            r = r + F.linear(F.relu(self._conv_at(index, i, j)), *expand)
        return r

    def put(self, i: int, j: int, value: torch.Tensor) -> None:
        half = self.convs[0].padding[0]
        self.planes[0][:, 0, i + half, j + half] = value
