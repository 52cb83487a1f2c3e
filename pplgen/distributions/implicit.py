"""A simulated observation: the output site of an implicit model (a GAN generator)."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints

from pplgen.errors import ImplicitLikelihoodError

__all__ = ["Implicit"]


class Implicit(TorchDistribution):
    r"""An observed site whose value is simulated by the program, so that no likelihood exists.

    Write the generator of an implicit model as an ordinary Pyro program and observe the data at an
    ``Implicit`` site holding the simulated value :math:`x = G(z)`::

        def model(x):
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
                pyro.sample("x", pplgen.Implicit(generator(z), event_dim=1), obs=x)

    :func:`pplgen.inspect` marks the site ``implicit`` and :func:`pplgen.fit` trains the program
    adversarially: a discriminator compares the simulated value (``site["fn"].value``) with the observed
    one (``site["value"]``). Sampling the site returns the simulated value, with gradients to the
    generator. ``log_prob`` raises :class:`~pplgen.errors.ImplicitLikelihoodError`.

    A simulation conditioned on something, a class label, a source image to translate or the state an
    action starts from, passes it as ``context``: the discriminator then judges pairs (value, context),
    real ones from the data and simulated ones, so that the program learns the conditional distribution
    of the value given the context (the conditional GAN of Mirza & Osindero 2014).

    References:
        Goodfellow et al. (2014), "Generative adversarial nets".
        Mohamed & Lakshminarayanan (2016), "Learning in implicit generative models".
        Mirza & Osindero (2014), "Conditional generative adversarial nets".

    Args:
        value: the simulated value, of shape ``batch_shape + event_shape``.
        event_dim: how many rightmost dimensions of ``value`` form one event.
        context: what the value is conditioned on, of shape ``batch_shape + (K,)`` (e.g. one-hot labels);
            None for an unconditional simulation.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     with pyro.plate("data", x.shape[0]):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        ...         pyro.sample("x", Implicit(2 * z, event_dim=1), obs=x)
        >>> graph = inspect(model, torch.zeros(5, 2))
        >>> graph.graph["family"], graph.nodes["x"]["kind"], list(graph.edges)
        ('implicit', 'implicit', [('z', 'x')])
        >>> d = Implicit(torch.ones(3, 2), event_dim=1)
        >>> d.batch_shape, d.event_shape, d.rsample((4,)).shape
        (torch.Size([3]), torch.Size([2]), torch.Size([4, 3, 2]))
        >>> try:
        ...     d.log_prob(torch.ones(3, 2))
        ... except ImplicitLikelihoodError as err:
        ...     print(err)
        an Implicit site has a simulated value and no likelihood; train the program adversarially ...
    """

    arg_constraints = {}
    support = constraints.real
    has_rsample = True

    def __init__(
        self, value: torch.Tensor, event_dim: int = 0, context: torch.Tensor | None = None, validate_args=None
    ):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"Implicit expects a tensor value, got {type(value).__name__}")
        if not 0 <= event_dim <= value.dim():
            raise ValueError(
                f"Implicit expects 0 <= event_dim <= value.dim() = {value.dim()}, got {event_dim}"
            )
        split = value.dim() - event_dim
        if context is not None and (context.dim() != split + 1 or context.shape[:-1] != value.shape[:split]):
            batch = ", ".join(map(str, value.shape[:split]))
            got = tuple(context.shape)
            raise ValueError(f"Implicit expects a context of shape ({batch}, K), got {got}")
        self.value, self.context = value, context
        super().__init__(value.shape[:split], value.shape[split:], validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        value = self.value.expand(batch_shape + self.event_shape)
        context = None if self.context is None else self.context.expand(batch_shape + self.context.shape[-1:])
        return Implicit(value, event_dim=len(self.event_shape), context=context)

    def rsample(self, sample_shape=torch.Size()):
        return self.value.expand(torch.Size(sample_shape) + self.value.shape)

    def log_prob(self, value):
        raise ImplicitLikelihoodError(
            "an Implicit site has a simulated value and no likelihood; train the program "
            "adversarially (pplgen.fit picks the adversarial trainer for Implicit sites) and "
            "evaluate it with sample metrics"
        )

    @property
    def mean(self):
        return self.value
