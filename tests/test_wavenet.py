"""WaveNet beyond the shared contract: μ-law, receptive field, conditioning, errors, the FSDD zoo model."""

import pytest
import torch

import pplgen
from pplgen.distributions.wavenet import WaveNet, mu_law_decode, mu_law_encode
from pplgen.errors import DataError, ModelError
from pplgen.models.wavenet import WaveNetModel
from pplgen.nn.wavenet import WaveNetNet
from tests.conftest import needs_data_file


def _net(length=24, **kwargs):
    torch.manual_seed(0)
    kwargs = {"num_levels": 16, "residual_channels": 8, "skip_channels": 8, "dilations": [1, 2, 4], **kwargs}
    return WaveNetNet(length, **kwargs)


# -- μ-law --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [3, 4, 16, 256, 1024])
def test_mu_law_round_trip_is_exact(K):
    levels = torch.arange(K)
    values = mu_law_decode(levels, K)
    assert torch.equal(mu_law_encode(values, K), levels)
    assert values[0] == -1 and values[-1] == 1
    assert torch.all(values[1:] > values[:-1])  # strictly increasing
    assert torch.allclose(values, -values.flip(0), atol=1e-6)  # symmetric about zero


def test_mu_law_is_monotone_and_rounds_to_the_nearest_level():
    x = torch.linspace(-1, 1, 20001)
    levels = mu_law_encode(x)
    assert levels.dtype == torch.int64 and levels.min() == 0 and levels.max() == 255
    assert torch.all(levels[1:] >= levels[:-1])
    assert len(levels.unique()) == 256  # every level is used
    compand = lambda v: torch.sign(v) * torch.log1p(255 * v.abs()) / torch.log1p(torch.tensor(255.0))
    error = (compand(x) - compand(mu_law_decode(levels))).abs()
    assert error.max() <= 1 / 255 + 1e-6  # half a step of 2 / 255 in the companded domain
    assert torch.equal(mu_law_encode(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255]))  # clipped


# -- the network -------------------------------------------------------------------------------------
def test_receptive_field_by_gradients():
    net = _net(length=24, dilations=[1, 2, 4, 1])
    assert net.receptive_field == 9
    x = net.relax(torch.randint(16, (1, 24))).requires_grad_()
    (grad,) = torch.autograd.grad(net(x)[0, 20].sum(), x)
    seen = (grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert seen == list(range(20 - 9, 20))  # exactly the 9 samples before step 20


def test_zoo_default_receptive_field():
    model = WaveNetModel(length=100)
    assert model.net.receptive_field == 2047 and len(model.net.dilations) == 20


def test_levels_and_one_hot_inputs_agree():
    net = _net()
    levels = torch.randint(16, (3, 24))
    assert torch.allclose(net(levels), net(net.relax(levels)), atol=1e-5)


def test_cached_equals_naive_on_a_deeper_conditioned_net():
    net = _net(length=48, dilations=[1, 2, 4, 8, 16, 1, 2], global_dim=3, local_channels=2, local_length=6)
    gen = torch.Generator().manual_seed(1)
    context = net.join_context(torch.randn(3, 3, generator=gen), torch.randn(3, 2, 6, generator=gen))
    u = torch.rand(3, 48, generator=gen)
    assert torch.equal(net.generate(u, context), net.generate_naive(u, context))


@pytest.mark.parametrize("upsample", ["repeat", "learned"])
def test_local_context_reaches_its_own_steps(upsample):
    net = _net(length=12, local_channels=2, local_length=4, upsample=upsample)  # stride 3
    local = torch.randn(1, 2, 4)
    moved = local.clone()
    moved[:, :, 1] += 1.0  # local step 1 covers samples 3, 4, 5
    x = torch.randint(16, (1, 12))
    changed = (net(x, net.join_context(None, local)) - net(x, net.join_context(None, moved))).abs().sum(-1)[0]
    assert torch.all(changed[:3] == 0) and torch.all(changed[3:6] > 0)


def test_join_and_split_context():
    net = _net(global_dim=3, local_channels=2, local_length=5)
    glob, local = torch.randn(4, 3), torch.randn(2, 5)  # the local series broadcasts over the batch
    joined = net.join_context(glob, local)
    assert joined.shape == (4, 3 + 10) and net.context_shape == (13,)
    g, y = net.split_context(joined)
    assert torch.equal(g, glob) and torch.equal(y, local.expand(4, 2, 5))
    d = WaveNet(net, glob[:1], torch.randn(6, 2, 5))
    assert d.batch_shape == (6,) and d.sample().shape == (6, 24)
    assert d.log_prob(d.sample((2,))).shape == (2, 6)


# -- the distribution --------------------------------------------------------------------------------
def test_log_prob_is_that_of_the_level_sequence():
    d = WaveNet(_net())
    torch.manual_seed(2)
    x = d.sample((5,))
    assert torch.equal(mu_law_decode(mu_law_encode(x, 16), 16), x)  # samples are decoded levels
    nudged = (x + 1e-3 * torch.randn_like(x)).clamp(-1, 1)  # same levels: mostly the same bins
    same = (mu_law_encode(nudged, 16) == mu_law_encode(x, 16)).all(-1)
    assert same.any()
    assert torch.allclose(d.log_prob(nudged)[same], d.log_prob(x)[same])
    assert d.support.check(x).all()


@pytest.mark.parametrize(
    "value, match",
    [
        (torch.zeros(24, dtype=torch.long), "floats"),
        (torch.zeros(23), "event shape"),
        (torch.full((24,), float("nan")), r"\[-1, 1\].*nan"),
        (torch.full((2, 24), 1.01), r"48 outside"),
    ],
)
def test_bad_values(value, match):
    with pytest.raises(DataError, match=match):
        WaveNet(_net()).log_prob(value)


def test_bad_nets_contexts_and_inputs():
    with pytest.raises(ModelError, match="WaveNetNet"):
        WaveNet(torch.nn.Linear(2, 2))
    with pytest.raises(DataError, match="no local context"):
        WaveNet(_net(), local=torch.zeros(2, 5))
    with pytest.raises(DataError, match=r"local context of shape \(\.\.\., 2, 5\)"):
        WaveNet(_net(local_channels=2, local_length=5), local=torch.zeros(2, 4))
    with pytest.raises(DataError, match="needs a local context"):
        WaveNet(_net(local_channels=2, local_length=5))
    with pytest.raises(DataError, match="do not broadcast"):
        WaveNet(_net(global_dim=3, local_channels=2, local_length=5), torch.zeros(3, 3), torch.zeros(4, 2, 5))
    net = _net()
    with pytest.raises(DataError, match=r"levels of shape \(B, 24\)"):
        net(torch.zeros(2, 23, dtype=torch.long))
    with pytest.raises(DataError, match="levels 0 .. 15"):
        net(torch.full((2, 24), 16))
    with pytest.raises(ValueError, match="num_levels >= 3"):
        WaveNetNet(10, num_levels=2)
    with pytest.raises(ValueError, match="together"):
        WaveNetNet(10, local_channels=3)


# -- the zoo model on spoken digits ------------------------------------------------------------------
SMALL = {"length": 256, "residual_channels": 8, "skip_channels": 16, "dilations": [1, 2, 4, 8, 16, 32]}


@pytest.fixture(scope="module")
def fsdd():
    data = pplgen.data.load("fsdd", "test")
    rows = torch.arange(0, 300, 19)  # 16 recordings, every digit
    return data, data.x[rows, 2000:2256].contiguous(), data.y[rows]


@needs_data_file("fsdd.npz")
def test_zoo_model_from_fsdd(fsdd):
    data, x, y = fsdd
    model = WaveNetModel.from_dataset(data, **SMALL)
    assert model.takes_labels and model.config["num_classes"] == 10 and data.meta["sample_rate"] == 8000
    assert WaveNetModel.from_dataset(data).config["length"] == 8000
    graph = pplgen.inspect(model.model, x, y)
    assert graph.graph["family"] == "exact" and graph.nodes["x"]["autoregressive"]
    with pytest.raises(DataError, match="call model"):
        model.model(x)
    with pytest.raises(DataError, match="labels 0 .. 10"):
        model.model(x[:2], torch.tensor([0, 10]))


@needs_data_file("fsdd.npz")
def test_zoo_model_learns_fsdd(fsdd):
    data, x, y = fsdd
    torch.manual_seed(0)
    model = WaveNetModel.from_dataset(data, **SMALL)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    nll = []
    for _ in range(6):
        loss = -WaveNet(model.net, model.context(y)).log_prob(x).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        nll.append(loss.item())
    assert all(b < a for a, b in zip(nll[:-1], nll[1:], strict=True)), nll
    assert nll[-1] < nll[0] - 40  # nats per recording of 256 samples (uniform: 256 ln 256 = 1420)
    result = pplgen.fit(model.model, (x, y), epochs=1, batch_size=8, seed=0, device="cpu", progress=False)
    assert result.family == "exact" and torch.isfinite(torch.tensor(result.history[-1]["nll"]))
    speech = pplgen.sample(model.model, 2, (x[:2], torch.tensor([3, 7])), device="cpu")
    assert speech.shape == (2, 256) and speech.abs().max() <= 1


def test_unconditional_zoo_model_takes_no_labels():
    model = WaveNetModel(length=32, num_classes=None, residual_channels=4, skip_channels=4, dilations=[1, 2])
    assert not model.takes_labels and model.net.context_shape is None
    x = torch.rand(3, 32) * 2 - 1
    graph = pplgen.inspect(model.model, x)
    assert graph.graph["family"] == "exact"
    with pytest.raises(DataError, match="models audio"):
        WaveNetModel.from_dataset(pplgen.data.load("digits"))


def test_cached_generation_repairs_disagreements_with_the_teacher_forced_pass(monkeypatch):
    # Noise on the queue path's logits stands in for rounding: the checking pass must still make the
    # result exactly the naive path's.
    net = _net(length=30, num_levels=4)
    step = net._head_step
    monkeypatch.setattr(net, "_head_step", lambda skip: step(skip) + 2.0 * torch.randn(skip.shape[0], 4))
    u = torch.rand(5, 30, generator=torch.Generator().manual_seed(4))
    assert torch.equal(net.generate(u), net.generate_naive(u))
