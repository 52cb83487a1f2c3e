"""Invertible layers for normalising flows, and the stacks of RealNVP and MAF built from them.

Every layer is a :class:`Bijection` written in the density direction, data to noise:
``forward(x, context) -> (y, log_abs_det)`` and ``inverse(y, context) -> x`` on flat ``(B, D)`` batches.
The distribution that puts a standard normal under a stack is
:class:`pplgen.distributions.flow.FlowDistribution`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints

from pplgen.errors import ModelError
from pplgen.nn.made import MADENet, MaskedLinear
from pplgen.nn.mlp import MLP

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "BatchNorm",
    "Bijection",
    "FlowNet",
    "Logit",
    "MAFNet",
    "MaskedAutoregressive",
    "Permutation",
    "RealNVPNet",
    "checkerboard_mask",
    "half_mask",
]


class Bijection(nn.Module):
    r"""An invertible map :math:`f` of vectors, written in the density direction (data to noise).

    ``forward(x, context)`` returns :math:`y = f(x)` of shape ``(B, D)`` and
    :math:`\log |\det \partial f(x) / \partial x|` of shape ``(B,)``; ``inverse(y, context)`` returns
    :math:`x = f^{-1}(y)`. ``context`` is a ``(B, C)`` conditioning vector for the layers that take one;
    the others ignore it.

    Example:
        A new layer defines both directions and the log-determinant; :class:`FlowNet` stacks it.

        >>> class Double(Bijection):
        ...     def forward(self, x, context=None):
        ...         return 2 * x, x.new_full((x.shape[0],), x.shape[1] * math.log(2))
        ...     def inverse(self, y, context=None):
        ...         return y / 2
        >>> y, log_det = Double()(torch.ones(3, 2))
        >>> y[0].tolist(), round(log_det[0].item(), 4)  # log |det| = D log 2
        ([2.0, 2.0], 1.3863)
        >>> FlowNet(2, [Double(), Double()]).inverse(torch.full((1, 2), 8.0)).tolist()
        [[2.0, 2.0]]
    """

    #: The set the layer is defined on, as a constraint on one coordinate.
    domain: constraints.Constraint = constraints.real

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


def _trains_now(module: nn.Module) -> bool:
    # pplgen's inspection and input checks run programs in training mode under no_grad; only a real
    # training step (gradients on) may change data-dependent state.
    return module.training and torch.is_grad_enabled()


# -- masks ------------------------------------------------------------------------------------------------


def half_mask(dim: int) -> torch.Tensor:
    """A coupling mask over ``dim`` coordinates: 1 (passed through) for the first ``dim // 2``, else 0.

    References:
        Dinh, Krueger & Bengio (2015), "NICE: non-linear independent components estimation".

    Example:
        >>> half_mask(5).tolist()
        [1.0, 1.0, 0.0, 0.0, 0.0]
    """
    return (torch.arange(dim) < dim // 2).float()


def checkerboard_mask(image_shape: Sequence[int]) -> torch.Tensor:
    """A flat coupling mask of an image: 1 where row + column is even (Dinh et al. 2017, Figure 3).

    >>> checkerboard_mask((2, 3)).tolist()
    [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    """
    rows, cols = (int(s) for s in image_shape)
    grid = torch.arange(rows)[:, None] + torch.arange(cols)[None, :]
    return (grid % 2 == 0).float().flatten()


# -- layers ---------------------------------------------------------------------------------------------


class AffineCoupling(Bijection):
    r"""The affine coupling layer of RealNVP: the coordinates where ``mask`` is 1 pass through and
    condition an elementwise affine map of the others,

    .. math::
        y = x \odot e^{s(x_m, c)} + t(x_m, c), \qquad x_m = x \odot m,

    with :math:`s = t = 0` where :math:`m = 1`. The log-scale is bounded,
    :math:`s = a \odot \tanh(\tilde s)` with a learned :math:`a` (initially 1), which keeps early training
    from exploding. :math:`\tilde s` and :math:`t` come from one MLP on :math:`x_m` and the context.
    The Jacobian is triangular, so :math:`\log|\det| = \sum_i s_i`, and the inverse is one pass.

    References:
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP".

    Args:
        mask: ``(D,)`` zeros and ones; at least one zero (a coordinate to transform).
        hidden: the conditioner's hidden layer widths.
        context_dim: the size of a conditioning vector, or ``None``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> layer = AffineCoupling(half_mask(4), hidden=[8])
        >>> x = torch.randn(3, 4)
        >>> y, log_det = layer(x)
        >>> torch.equal(y[:, :2], x[:, :2]), torch.allclose(layer.inverse(y), x, atol=1e-6)
        (True, True)
        >>> jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])  # (4, 4)
        >>> torch.allclose(torch.linalg.slogdet(jac).logabsdet, log_det[0], atol=1e-5)
        True
    """

    def __init__(
        self, mask: torch.Tensor, hidden: Sequence[int] = (256, 256), context_dim: int | None = None
    ):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.get_default_dtype())
        if mask.dim() != 1 or not bool(((mask == 0) | (mask == 1)).all()) or bool(mask.all()):
            raise ModelError(
                f"AffineCoupling expects a (D,) mask of zeros and ones with at least one zero, "
                f"got {mask.tolist() if mask.numel() <= 16 else tuple(mask.shape)}"
            )
        dim = mask.numel()
        self.register_buffer("mask", mask)
        self.net = MLP([dim + (context_dim or 0), *hidden, 2 * dim])
        self.scale = nn.Parameter(torch.ones(dim))

    def _log_scale_shift(self, x: torch.Tensor, context: torch.Tensor | None):
        inputs = x * self.mask if context is None else torch.cat([x * self.mask, context], dim=-1)
        raw, shift = self.net(inputs).chunk(2, dim=-1)  # (B, D) each
        free = 1 - self.mask
        return free * self.scale * torch.tanh(raw), free * shift

    def forward(self, x, context=None):
        log_scale, shift = self._log_scale_shift(x, context)
        return x * log_scale.exp() + shift, log_scale.sum(-1)

    def inverse(self, y, context=None):
        log_scale, shift = self._log_scale_shift(y, context)  # the passed coordinates are those of x
        return (y - shift) * torch.exp(-log_scale)


class MaskedAutoregressive(Bijection):
    r"""One layer of a masked autoregressive flow: a MADE gives each coordinate's shift and log-scale
    from the coordinates before it (natural order),

    .. math::
        u_i = (x_i - \mu_i(x_{<i}, c))\, e^{-\alpha_i(x_{<i}, c)}, \qquad
        \log|\det| = -\sum_i \alpha_i .

    The density direction is one pass; the inverse, :math:`x_i = u_i e^{\alpha_i} + \mu_i`, needs
    :math:`D` passes, each fixing one more coordinate. The conditioner is a :class:`pplgen.nn.made.MADENet`
    (its degrees, masks and hidden layers; its output layer gives :math:`\mu`), with a second masked
    output layer for :math:`\alpha`. Stack layers with :class:`Permutation` between them to vary the order.

    References:
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation".
        Germain, Gregor, Murray & Larochelle (2015), "MADE: masked autoencoder for distribution estimation".

    Args:
        dim: the number of coordinates D.
        hidden: MADE's hidden layer widths.
        context_dim: the size of a conditioning vector, or ``None``.
        seed: the seed of MADE's hidden degrees.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> layer = MaskedAutoregressive(dim=3, hidden=[8])
        >>> x = torch.randn(1, 3)
        >>> u, log_det = layer(x)
        >>> jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])  # (3, 3)
        >>> bool((jac.triu(1) == 0).all())  # u_i reads x_j for j <= i only
        True
        >>> torch.allclose(jac.diagonal().log().sum(), log_det[0], atol=1e-5)
        True
        >>> torch.allclose(layer.inverse(u), x, atol=1e-5)
        True
    """

    def __init__(
        self, dim: int, hidden: Sequence[int] = (512,), context_dim: int | None = None, seed: int = 0
    ):
        super().__init__()
        if not hidden:
            raise ModelError(f"MaskedAutoregressive expects at least one hidden layer, got {list(hidden)}")
        self.made = MADENet(dim, hidden, num_levels=2, num_masks=1, context_dim=context_dim, seed=seed)
        self.log_scale = MaskedLinear(hidden[-1], dim)

    def shift_log_scale(self, x: torch.Tensor, context: torch.Tensor | None = None):
        r""":math:`\mu(x_{<i}, c)` and :math:`\alpha(x_{<i}, c)`, each ``(B, D)``."""
        made = self.made
        masks = made.masks(0)
        h = x
        for i, (layer, mask) in enumerate(zip(made.layers, masks, strict=False)):
            h = layer(h, mask)
            if i == 0 and made.context_map is not None:
                h = h + made.context_map(context)
            h = torch.relu(h)
        return made.output(h, masks[-1]), self.log_scale(h, masks[-1])

    def forward(self, x, context=None):
        shift, log_scale = self.shift_log_scale(x, context)
        return (x - shift) * torch.exp(-log_scale), -log_scale.sum(-1)

    def inverse(self, y, context=None):
        x = torch.zeros_like(y)
        for _ in range(y.shape[-1]):  # pass k leaves the first k coordinates exact
            shift, log_scale = self.shift_log_scale(x, context)
            x = y * log_scale.exp() + shift
        return x


class ActNorm(Bijection):
    r"""An elementwise affine map :math:`y = (x - b) \odot e^{-s}` whose :math:`b, s` are parameters
    initialised from the first training batch so that :math:`y` has zero mean and unit variance.

    Unlike :class:`BatchNorm` it is the same map in training and evaluation, so a point's density never
    depends on the rest of its batch. The initialisation happens on the first forward pass in training
    mode with gradients on.

    References:
        Kingma & Dhariwal (2018), "Glow: generative flow with invertible 1x1 convolutions".

    Args:
        dim: the number of coordinates D.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> layer = ActNorm(2)
        >>> x = 3 + 2 * torch.randn(100, 2)
        >>> y, log_det = layer(x)  # the first training batch sets the shift and scale
        >>> torch.allclose(y.mean(0), torch.zeros(2), atol=1e-5), torch.allclose(y.std(0), torch.ones(2))
        (True, True)
        >>> torch.allclose(layer.inverse(layer(x + 1)[0]), x + 1, atol=1e-5)  # a fixed map from now on
        True
    """

    def __init__(self, dim: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x, context=None):
        if _trains_now(self) and not bool(self.initialized) and x.shape[0] > 1:
            with torch.no_grad():
                self.shift.copy_(x.mean(0))
                self.log_scale.copy_(x.std(0).clamp_min(1e-6).log())
                self.initialized.fill_(True)
        y = (x - self.shift) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y, context=None):
        return y * self.log_scale.exp() + self.shift


class BatchNorm(Bijection):
    r"""Batch normalisation as a flow layer: :math:`y = \frac{x - m}{\sqrt{v + \epsilon}} \odot e^{\gamma}
    + \beta`, with :math:`\log|\det| = \sum_i \gamma_i - \tfrac12 \log(v_i + \epsilon)`.

    In training mode :math:`m, v` are the batch's mean and variance (gradients flow through them) and
    running averages are updated; in evaluation mode the running averages are used, so the layer is an
    exact elementwise affine bijection. ``inverse`` always uses the running averages, since a training
    batch is gone by the time one samples. Running averages are updated only with gradients on, so
    inspecting or checking a program leaves them alone.

    References:
        Ioffe & Szegedy (2015), "Batch normalization: accelerating deep network training by reducing
        internal covariate shift".
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP", Section 3.7.
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation",
        Section 3.4.

    Args:
        dim: the number of coordinates D.
        momentum: the weight of a new batch in the running averages.
        eps: added to the variance.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> layer = BatchNorm(2)
        >>> x = 5 + 3 * torch.randn(64, 2)
        >>> y, _ = layer(x)  # training mode: the batch's own statistics
        >>> torch.allclose(y.mean(0), torch.zeros(2), atol=1e-5)
        True
        >>> _ = layer.eval()  # evaluation mode: the running averages, an exact bijection
        >>> y, log_det = layer(x)
        >>> torch.allclose(layer.inverse(y), x, atol=1e-5), log_det.shape
        (True, torch.Size([64]))
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x, context=None):
        if self.training and x.shape[0] > 1:  # one point has no batch variance: use the running one
            mean, var = x.mean(0), x.var(0, unbiased=False)
            if _trains_now(self):
                with torch.no_grad():
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(x.var(0), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.log_gamma.exp() + self.beta
        log_det = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()
        return y, log_det.expand(x.shape[0])

    def inverse(self, y, context=None):
        scale = torch.sqrt(self.running_var + self.eps) * torch.exp(-self.log_gamma)
        return (y - self.beta) * scale + self.running_mean


class Permutation(Bijection):
    """A fixed reordering of the coordinates, ``y = x[..., perm]``; its Jacobian determinant is ±1.

    >>> Permutation.reverse(3)(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()
    [[3.0, 2.0, 1.0]]

    Args:
        perm: a permutation of ``0 .. D - 1``.
    """

    def __init__(self, perm: torch.Tensor | Sequence[int]):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.dim() != 1 or not torch.equal(perm.sort().values, torch.arange(perm.numel())):
            raise ModelError(f"Permutation expects a permutation of 0 .. D - 1, got {perm.tolist()}")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    @classmethod
    def reverse(cls, dim: int) -> Permutation:
        """The reversal of ``dim`` coordinates (MAF's order between layers)."""
        return cls(torch.arange(dim - 1, -1, -1))

    def forward(self, x, context=None):
        return x[..., self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y, context=None):
        return y[..., self.inverse_perm]


class _OpenInterval(constraints.Constraint):
    """Reals strictly between ``low`` and ``high`` (torch has only closed and half-open intervals)."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = low, high

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (self.low < value) & (value < self.high)

    def __repr__(self) -> str:
        return f"the open interval ({self.low:g}, {self.high:g})"


class Logit(Bijection):
    r"""The logit of values squeezed into :math:`(\alpha, 1 - \alpha)`:
    :math:`y = \operatorname{logit}(\alpha + (1 - 2\alpha) x)`, so that data in :math:`[0, 1]` (e.g.
    dequantised pixels) become unbounded, as flows with a normal base need. The Jacobian term keeps
    the density that of :math:`x`.

    References:
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP", Section 4.1
        (:math:`\alpha = 0.05`).
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation",
        Appendix E.2 (:math:`\lambda = 10^{-6}`).

    Args:
        alpha: the squeeze, in :math:`(0, 1/2)`.

    Example:
        >>> layer = Logit(alpha=0.05)
        >>> x = torch.tensor([[0.0, 0.5, 1.0]])
        >>> y, log_det = layer(x)
        >>> [round(v, 3) for v in y[0].tolist()], torch.allclose(layer.inverse(y), x)
        ([-2.944, 0.0, 2.944], True)
        >>> layer.domain.check(torch.tensor([-0.1, 1.05]))  # what a FlowDistribution accepts
        tensor([False,  True])
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ModelError(f"Logit expects 0 < alpha < 0.5, got alpha={alpha}")
        self.alpha = float(alpha)
        margin = alpha / (1 - 2 * alpha)
        self.domain = _OpenInterval(-margin, 1 + margin)

    def forward(self, x, context=None):
        s = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(s) - torch.log1p(-s)
        log_det = (math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s)).sum(-1)
        return y, log_det

    def inverse(self, y, context=None):
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)


# -- stacks ---------------------------------------------------------------------------------------------


class FlowNet(Bijection):
    """A stack of bijections applied in order, data to noise; the inverse runs them backwards.

    Args:
        dim: the number of coordinates D.
        layers: the bijections, each of D coordinates (an empty stack is the identity).
        context_dim: the size of the conditioning vector the layers take, or ``None``.

    References:
        Rezende & Mohamed (2015), "Variational inference with normalizing flows".
        Papamakarios, Nalisnick, Rezende, Mohamed & Lakshminarayanan (2021), "Normalizing flows for
        probabilistic modeling and inference".

    Example:
        >>> flow = FlowNet(3, [Logit(alpha=0.05), Permutation.reverse(3)])
        >>> x = torch.tensor([[0.1, 0.5, 0.9]])
        >>> y, log_det = flow(x)
        >>> torch.allclose(y, Logit(alpha=0.05)(x)[0].flip(-1)), torch.allclose(flow.inverse(y), x)
        (True, True)
        >>> flow.domain  # the first layer's
        the open interval (-0.0555556, 1.05556)
    """

    def __init__(self, dim: int, layers: Sequence[Bijection] = (), context_dim: int | None = None):
        super().__init__()
        if dim < 1:
            raise ModelError(f"FlowNet expects dim >= 1, got dim={dim}")
        self.event_shape = (int(dim),)
        self.context_shape = None if context_dim is None else (int(context_dim),)
        self.layers = nn.ModuleList(layers)

    @property
    def domain(self) -> constraints.Constraint:
        return self.layers[0].domain if len(self.layers) else constraints.real

    def forward(self, x, context=None):
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, term = layer(x, context)
            log_det = log_det + term
        return x, log_det

    def inverse(self, y, context=None):
        for layer in reversed(self.layers):
            y = layer.inverse(y, context)
        return y

    def tensor_options(self) -> dict:
        """``dtype`` and ``device`` of the stack's tensors, for drawing its base noise."""
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        if tensor is None or not tensor.is_floating_point():
            return {"dtype": torch.get_default_dtype()}
        return {"dtype": tensor.dtype, "device": tensor.device}


_NORMS = {"actnorm": ActNorm, "batchnorm": BatchNorm}


def _norm(norm: str | None, dim: int) -> list[Bijection]:
    if norm is None:
        return []
    if norm not in _NORMS:
        raise ModelError(f"norm must be one of {sorted(_NORMS)} or None, got {norm!r}")
    return [_NORMS[norm](dim)]


def _preprocess(logit: float | None) -> list[Bijection]:
    return [] if logit is None else [Logit(logit)]


class RealNVPNet(FlowNet):
    """RealNVP on flat vectors: affine couplings with alternating masks, each followed by a normalisation.

    Images (``image_shape`` given) use the checkerboard mask and its complement in turn; other vectors
    the first and second halves. Each coupling's conditioner is an MLP on the flat vector, not the
    paper's convolutional ResNet.

    References:
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP".

    Args:
        dim: the number of coordinates D (at least 2).
        layers: the number of coupling layers.
        hidden: each conditioner's hidden layer widths.
        image_shape: ``(H, W)`` with ``H * W == dim`` for checkerboard masks, or ``None``.
        context_dim: the size of a conditioning vector, or ``None``.
        norm: ``"batchnorm"`` (the paper's), ``"actnorm"`` or ``None``, after each coupling.
        logit: prepend a :class:`Logit` with this ``alpha`` (for data in [0, 1]), or ``None``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = RealNVPNet(dim=4, layers=2, hidden=[8], image_shape=(2, 2), norm="actnorm")
        >>> [type(layer).__name__ for layer in net.layers]
        ['AffineCoupling', 'ActNorm', 'AffineCoupling', 'ActNorm']
        >>> net.layers[0].mask.tolist(), net.layers[2].mask.tolist()  # checkerboard, then its complement
        ([1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0])
        >>> x = torch.randn(5, 4)
        >>> z, log_det = net(x)
        >>> z.shape, log_det.shape, torch.allclose(net.inverse(z), x, atol=1e-5)
        (torch.Size([5, 4]), torch.Size([5]), True)
    """

    def __init__(
        self,
        dim: int,
        layers: int = 6,
        hidden: Sequence[int] = (512, 512),
        image_shape: Sequence[int] | None = None,
        context_dim: int | None = None,
        norm: str | None = "batchnorm",
        logit: float | None = None,
    ):
        if dim < 2:
            raise ModelError(f"RealNVPNet needs dim >= 2 to split the coordinates, got dim={dim}")
        if image_shape is not None and math.prod(image_shape) != dim:
            raise ModelError(f"RealNVPNet: image_shape {tuple(image_shape)} does not have dim={dim} pixels")
        mask = half_mask(dim) if image_shape is None else checkerboard_mask(image_shape)
        stack = _preprocess(logit)
        for i in range(layers):
            stack.append(AffineCoupling(mask if i % 2 == 0 else 1 - mask, hidden, context_dim))
            stack += _norm(norm, dim)
        super().__init__(dim, stack, context_dim)


class MAFNet(FlowNet):
    """A masked autoregressive flow: MADE layers, each followed by a normalisation, the order reversed
    between them.

    References:
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation".

    Args:
        dim: the number of coordinates D.
        layers: the number of MADE layers.
        hidden: each MADE's hidden layer widths.
        context_dim: the size of a conditioning vector, or ``None``.
        norm: ``"batchnorm"`` (the paper's), ``"actnorm"`` or ``None``, after each MADE.
        logit: prepend a :class:`Logit` with this ``alpha`` (for data in [0, 1]), or ``None``.
        seed: the seed of the first MADE's hidden degrees (layer ``i`` uses ``seed + i``).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = MAFNet(dim=3, layers=2, hidden=[8], norm=None)
        >>> [type(layer).__name__ for layer in net.layers]
        ['MaskedAutoregressive', 'Permutation', 'MaskedAutoregressive']
        >>> x = torch.randn(4, 3)
        >>> z, log_det = net(x)
        >>> z.shape, log_det.shape, torch.allclose(net.inverse(z), x, atol=1e-5)
        (torch.Size([4, 3]), torch.Size([4]), True)
    """

    def __init__(
        self,
        dim: int,
        layers: int = 5,
        hidden: Sequence[int] = (1024,),
        context_dim: int | None = None,
        norm: str | None = "batchnorm",
        logit: float | None = None,
        seed: int = 0,
    ):
        stack = _preprocess(logit)
        for i in range(layers):
            if i > 0:
                stack.append(Permutation.reverse(dim))
            stack.append(MaskedAutoregressive(dim, hidden, context_dim, seed=seed + i))
            stack += _norm(norm, dim)
        super().__init__(dim, stack, context_dim)
