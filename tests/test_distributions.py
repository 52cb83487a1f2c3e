"""Contracts of pplgen's distributions: normalisation, the autoregressive property, sampling."""

import itertools

import pytest
import torch

from pplgen import Implicit
from pplgen.distributions import FVSBN
from pplgen.errors import ImplicitLikelihoodError


def _fvsbn(dim=6, batch=()):
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(dim, dim, generator=gen)
    bias = torch.randn(*batch, dim, generator=gen)
    return FVSBN(weight, bias)


def _all_states(dim):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)))


@pytest.mark.parametrize("dim", [1, 4, 10])
def test_fvsbn_normalises_over_all_states(dim):
    d = _fvsbn(dim)
    total = d.log_prob(_all_states(dim)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_fvsbn_is_autoregressive():
    # d log p(x_i | x_<i) / d x_j must vanish for j >= i: the conditional logits see only the past.
    d = _fvsbn(7)
    x = torch.bernoulli(torch.full((7,), 0.5)).requires_grad_()
    logits = d.logits(x)
    for i in range(7):
        (grad,) = torch.autograd.grad(logits[i], x, retain_graph=True)
        assert torch.all(grad[i:] == 0), f"dimension {i} sees the future"
        if i > 0:
            assert torch.any(grad[:i] != 0)


def test_fvsbn_samples_agree_with_log_prob():
    dim = 3
    d = _fvsbn(dim)
    torch.manual_seed(0)
    samples = d.sample((40000,))
    states = _all_states(dim)
    counts = (samples[:, None, :] == states[None]).all(-1).float().mean(0)
    expected = d.log_prob(states).exp()
    assert torch.allclose(counts, expected, atol=0.01)


def test_fvsbn_batch_shapes_and_validation():
    d = _fvsbn(5, batch=(3,))
    assert d.batch_shape == (3,) and d.event_shape == (5,)
    assert d.sample((2,)).shape == (2, 3, 5)
    assert d.expand((4, 3)).log_prob(torch.zeros(4, 3, 5)).shape == (4, 3)
    with pytest.raises(ValueError, match="square"):
        FVSBN(torch.zeros(3, 4), torch.zeros(3))


def test_implicit_holds_a_simulated_value_and_no_likelihood():
    value = torch.randn(5, 2, requires_grad=True)
    d = Implicit(value, event_dim=1)
    assert d.batch_shape == (5,) and d.event_shape == (2,)
    assert d.rsample() is value or torch.equal(d.rsample(), value)
    assert d.rsample().requires_grad  # gradients reach the generator
    assert d.expand((3, 5)).value.shape == (3, 5, 2)
    with pytest.raises(ImplicitLikelihoodError, match="adversarially"):
        d.log_prob(value)
    with pytest.raises(ValueError, match="event_dim"):
        Implicit(value, event_dim=3)
