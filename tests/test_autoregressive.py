"""One contract over every autoregressive distribution (cases in ``tests/cases_*.py``).

Normalisation over all states of a small event, the autoregressive property by gradients, samples
against ``log_prob``, cached against naive generation, shapes with and without context, save/load, and
clear errors for bad values and contexts.
"""

import io

import pytest
import torch

from pplgen.errors import DataError
from tests.ar_contract import all_cases

CASES = all_cases()


def _context(case, n):
    return None if case.context is None else case.context(n)


def _one_context(case):
    return None if case.context is None else case.context(1)[0]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request):
    return request.param


def test_normalises_over_all_states(case):
    d = case.dist(case.net(), _one_context(case))
    with torch.no_grad():
        total = d.log_prob(case.states()).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_autoregressive_by_gradients(case):
    net = case.net()
    torch.manual_seed(1)
    d = case.dist(net, _context(case, 1))
    levels = d.encode(d.sample((1,)).reshape(1, *net.event_shape))
    relaxed = net.relax(levels).detach().requires_grad_()
    logits = net(relaxed, _context(case, 1))
    event = tuple(net.event_shape)
    size = int(torch.Size(event).numel())
    flat = logits.reshape(size, -1)  # (D, 1 or K): the logits of each coordinate
    order = net.order(1)[0].tolist()
    rank = {position: r for r, position in enumerate(order)}
    for position in order:
        (grad,) = torch.autograd.grad(flat[position].sum(), relaxed, retain_graph=True)
        seen = grad.reshape(size, -1).abs().sum(-1) > 0  # (D,): which inputs the logits depend on
        later = torch.tensor([rank[j] >= rank[position] for j in range(size)])
        assert not seen[later].any(), f"coordinate {position} sees coordinates at or after it in the order"
        if case.full_dependence:
            assert seen[~later].all(), f"coordinate {position} does not see every earlier coordinate"


def test_samples_agree_with_log_prob(case):
    d = case.dist(case.net(), _one_context(case))
    torch.manual_seed(2)
    n = 20000
    samples = d.sample((n,))
    values, counts = torch.unique(samples.reshape(n, -1), dim=0, return_counts=True)
    with torch.no_grad():
        p = d.log_prob(values.reshape(-1, *d.event_shape)).exp()
    freq = counts.float() / n
    tolerance = 5 * (p * (1 - p) / n).sqrt() + 2.0 / n
    assert torch.all((freq - p).abs() <= tolerance), float(((freq - p).abs() / tolerance).max())
    assert p.sum() <= 1 + 1e-4


def test_cached_equals_naive(case):
    d = case.dist(case.net(), _context(case, 5))
    torch.manual_seed(3)
    cached = d.sample((4,))
    torch.manual_seed(3)
    naive = d.sample((4,), naive=True)
    assert torch.equal(cached, naive)


def test_shapes(case):
    net = case.net()
    event = tuple(net.event_shape)
    if case.context is None:
        d = case.dist(net, None)
        assert d.batch_shape == () and tuple(d.event_shape) == event
        x = d.sample((2, 3))
        assert tuple(x.shape) == (2, 3, *event)
        assert d.log_prob(x).shape == (2, 3)
        assert d.expand((5,)).sample().shape == (5, *event)
    else:
        d = case.dist(net, case.context(4))
        assert d.batch_shape == (4,)
        x = d.sample((2,))
        assert tuple(x.shape) == (2, 4, *event)
        assert d.log_prob(x).shape == (2, 4)
        assert d.log_prob(x[0, 0]).shape == (4,)  # one value broadcast against the batch of contexts
    assert torch.isfinite(d.log_prob(x)).all()


def test_every_parameter_gets_a_gradient(case):
    net = case.net()
    d = case.dist(net, _context(case, 8))
    torch.manual_seed(4)
    x = d.sample((8,)) if case.context is None else d.sample()
    d.log_prob(x).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_save_load_round_trip(case):
    net = case.net()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    fresh = case.net()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x = case.states()[:16]
    ctx = _one_context(case)
    with torch.no_grad():
        assert torch.equal(case.dist(net, ctx).log_prob(x), case.dist(fresh, ctx).log_prob(x))


def test_bad_values_and_contexts(case):
    net = case.net()
    d = case.dist(net, _one_context(case))
    with pytest.raises(DataError, match="expected"):
        d.log_prob(case.bad_value())
    wrong_event = case.states()[0].reshape(-1)[:-1]
    with pytest.raises(DataError, match="event shape"):
        d.log_prob(wrong_event)
    if case.context is not None:
        ctx = case.context(2)
        with pytest.raises(DataError, match="context of shape"):
            case.dist(net, ctx[..., :-1])
        with pytest.raises(DataError, match="context"):
            case.dist(net, None)
    else:
        with pytest.raises(DataError, match="no context"):
            case.dist(net, torch.zeros(2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(case, monkeypatch):
    # TF32 would give the convolutions of the naive path and the matrix products of the cached path
    # different arithmetic; exact agreement needs full float32 on both
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    net = case.net().cuda()
    d = case.dist(net, None if case.context is None else case.context(3).cuda())
    x = d.sample((2,))
    assert x.device.type == "cuda"
    torch.manual_seed(5)
    cached = d.sample((2,))
    torch.manual_seed(5)
    assert torch.equal(cached, d.sample((2,), naive=True))
    assert torch.isfinite(d.log_prob(x)).all()
