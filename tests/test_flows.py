"""Normalising flows: one contract over every layer and stack, the flow distribution, dequantisation,
and the RealNVP and MAF zoo models."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pytest
import torch

import pplgen
from pplgen.data import load
from pplgen.data.dataset import Dataset
from pplgen.distributions.flow import Dequantized, FlowDistribution
from pplgen.errors import DataError, ModelError, PplgenError
from pplgen.models.flows import MAFModel, RealNVPModel
from pplgen.nn.flows import (
    ActNorm,
    AffineCoupling,
    BatchNorm,
    FlowNet,
    Logit,
    MAFNet,
    MaskedAutoregressive,
    Permutation,
    RealNVPNet,
    checkerboard_mask,
    half_mask,
)

DIM, CONTEXT = 4, 3


@dataclass
class Case:
    """A small bijection of ``DIM`` coordinates, in float64, after one training step and with its
    parameters moved off their initial values (so that no identity holds by accident)."""

    name: str
    build: Callable[[], torch.nn.Module]
    context_dim: int | None = None
    unit: bool = False  # defined on (0, 1) only: inputs are drawn there
    batch_statistics: bool = False  # a BatchNorm inside: training and evaluation differ

    def __repr__(self) -> str:
        return self.name

    def inputs(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(n, DIM, generator=gen) if self.unit else torch.randn(n, DIM, generator=gen)
        x = x.double()
        context = (
            None if self.context_dim is None else torch.randn(n, self.context_dim, generator=gen).double()
        )
        return x, context

    def layer(self, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        layer = self.build().double()
        x, context = self.inputs(16, seed=100 + seed)
        layer(x, context)  # a training step: initialises ActNorm, moves BatchNorm's running statistics
        perturb(layer, seed)
        return layer.eval()


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


CASES = [
    Case("coupling_halves", lambda: AffineCoupling(half_mask(DIM), hidden=[16])),
    Case(
        "coupling_checkerboard_context",
        lambda: AffineCoupling(checkerboard_mask((2, 2)), hidden=[16, 16], context_dim=CONTEXT),
        context_dim=CONTEXT,
    ),
    Case("made", lambda: MaskedAutoregressive(DIM, hidden=[16])),
    Case(
        "made_context",
        lambda: MaskedAutoregressive(DIM, hidden=[16, 16], context_dim=CONTEXT, seed=3),
        context_dim=CONTEXT,
    ),
    Case("actnorm", lambda: ActNorm(DIM)),
    Case("batchnorm", lambda: BatchNorm(DIM), batch_statistics=True),
    Case("reverse", lambda: Permutation.reverse(DIM)),
    Case("permutation", lambda: Permutation([2, 0, 3, 1])),
    Case("logit", lambda: Logit(0.05), unit=True),
    Case(
        "realnvp",
        lambda: RealNVPNet(DIM, layers=3, hidden=[16], norm="batchnorm", logit=0.05),
        unit=True,
        batch_statistics=True,
    ),
    Case(
        "realnvp_context",
        lambda: RealNVPNet(
            DIM, layers=2, hidden=[16], image_shape=(2, 2), context_dim=CONTEXT, norm="actnorm"
        ),
        context_dim=CONTEXT,
    ),
    Case("maf", lambda: MAFNet(DIM, layers=3, hidden=[16], norm="actnorm")),
    Case(
        "maf_context",
        lambda: MAFNet(DIM, layers=2, hidden=[16], context_dim=CONTEXT, norm="batchnorm", logit=1e-6),
        context_dim=CONTEXT,
        unit=True,
        batch_statistics=True,
    ),
]
WITH_PARAMETERS = [case for case in CASES if not case.name.startswith(("reverse", "permutation", "logit"))]


# -- the contract over every layer and stack ---------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_inverse_undoes_forward_and_back(case):
    layer = case.layer()
    x, context = case.inputs(7)
    y, log_det = layer(x, context)
    assert y.shape == (7, DIM) and log_det.shape == (7,)
    assert torch.allclose(layer.inverse(y, context), x, atol=1e-10)
    z = torch.randn(7, DIM, dtype=torch.float64)
    assert torch.allclose(layer(layer.inverse(z, context), context)[0], z, atol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_log_abs_det_is_the_autograd_jacobian(case):
    layer = case.layer()
    x, context = case.inputs(3)
    _, log_det = layer(x, context)
    for i in range(3):
        c = None if context is None else context[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: layer(v[None], c)[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, log_det[i], atol=1e-10)


@pytest.mark.parametrize("case", WITH_PARAMETERS, ids=repr)
def test_gradients_reach_every_parameter_and_the_context(case):
    layer = case.layer().train()
    x, context = case.inputs(9)
    if context is not None:
        context.requires_grad_(True)
    z, log_det = layer(x, context)
    (0.5 * z.pow(2).sum() - log_det.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    if context is not None:
        assert context.grad.abs().sum() > 0


@pytest.mark.parametrize("case", WITH_PARAMETERS, ids=repr)
def test_state_dict_round_trip(case, tmp_path):
    layer = case.layer(seed=0)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    fresh = case.layer(seed=1)
    x, context = case.inputs(5)
    assert not torch.allclose(fresh(x, context)[0], layer(x, context)[0])
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh(x, context)[0], layer(x, context)[0])
    assert torch.equal(fresh.inverse(x, context), layer.inverse(x, context))


@pytest.mark.parametrize("case", [c for c in CASES if not c.batch_statistics], ids=repr)
def test_training_and_evaluation_modes_agree(case):
    layer = case.layer()
    x, context = case.inputs(6)
    y_eval, log_det_eval = layer(x, context)
    y_train, log_det_train = layer.train()(x, context)
    assert torch.allclose(y_eval, y_train) and torch.allclose(log_det_eval, log_det_train)


# -- structure of the layers --------------------------------------------------------------------------


def test_made_layer_is_autoregressive_in_the_natural_order():
    torch.manual_seed(0)
    layer = perturb(MaskedAutoregressive(5, hidden=[32]).double(), 0)
    x = torch.randn(5, dtype=torch.float64)
    shift_jac = torch.autograd.functional.jacobian(lambda v: layer.shift_log_scale(v[None])[0][0], x)
    scale_jac = torch.autograd.functional.jacobian(lambda v: layer.shift_log_scale(v[None])[1][0], x)
    below = torch.tril(torch.ones(5, 5, dtype=torch.bool), diagonal=-1)
    for jac in (shift_jac, scale_jac):
        assert torch.all(jac[~below] == 0)  # nothing at or after i reaches coordinate i
        assert torch.all(jac[below] != 0)  # every earlier coordinate does
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)
    assert torch.all(jac.triu(diagonal=1) == 0)
    log_scale = layer.shift_log_scale(x[None])[1][0]
    assert torch.allclose(jac.diagonal(), torch.exp(-log_scale))


def test_coupling_passes_its_masked_half_and_scales_the_rest_elementwise():
    torch.manual_seed(0)
    mask = checkerboard_mask((2, 3))
    layer = perturb(AffineCoupling(mask, hidden=[16]).double(), 0)
    x = torch.randn(6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)
    fixed, free = mask.bool(), ~mask.bool()
    assert torch.equal(jac[fixed], torch.eye(6, dtype=torch.float64)[fixed])
    block = jac[free][:, free]
    assert torch.equal(block, torch.diag(block.diagonal()))
    assert torch.all(jac[free][:, fixed] != 0)


def test_coupling_log_scale_is_bounded_by_its_learned_factor():
    layer = AffineCoupling(half_mask(4), hidden=[8])
    with torch.no_grad():
        layer.net[-1].weight.mul_(1000.0)  # a conditioner gone wild
    _, log_det = layer(torch.randn(50, 4))
    assert log_det.abs().max() <= layer.scale[2:].abs().sum() + 1e-5


def test_batchnorm_standardises_in_training_and_updates_running_statistics_only_with_gradients():
    layer = BatchNorm(3, momentum=0.25)
    x = 2.0 + 3.0 * torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # how pplgen inspects and checks programs: no trace left behind
        y, _ = layer(x)
    assert torch.equal(layer.running_mean, torch.zeros(3)) and torch.equal(layer.running_var, torch.ones(3))
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(0, unbiased=False), torch.ones(3), atol=1e-3)
    layer(x)
    assert torch.allclose(layer.running_mean, 0.25 * x.mean(0))
    assert torch.allclose(layer.running_var, 0.75 + 0.25 * x.var(0))
    layer.eval()
    y, log_det = layer(x)
    scale = torch.rsqrt(layer.running_var + layer.eps)
    assert torch.allclose(y, (x - layer.running_mean) * scale)
    assert torch.allclose(log_det, scale.log().sum().expand(500))


def test_actnorm_initialises_from_its_first_training_batch_only():
    layer = ActNorm(3)
    x = 2.0 + 3.0 * torch.randn(400, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer(x)
    assert not layer.initialized and torch.equal(layer.shift, torch.zeros(3))
    y, _ = layer(x)
    assert layer.initialized
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5) and torch.allclose(y.std(0), torch.ones(3))
    shift = layer.shift.detach().clone()
    layer(x + 10.0)
    assert torch.equal(layer.shift, shift)


def test_bad_layer_settings_raise_model_errors():
    with pytest.raises(ModelError, match="at least one zero"):
        AffineCoupling(torch.ones(4))
    with pytest.raises(ModelError, match="zeros and ones"):
        AffineCoupling(torch.tensor([0.0, 0.5]))
    with pytest.raises(ModelError, match="permutation of 0 .. D - 1"):
        Permutation([0, 0, 1])
    with pytest.raises(ModelError, match="0 < alpha < 0.5"):
        Logit(0.5)
    with pytest.raises(ModelError, match="norm must be one of"):
        MAFNet(4, norm="layernorm")
    with pytest.raises(ModelError, match=r"image_shape \(3, 3\) does not have dim=4"):
        RealNVPNet(4, image_shape=(3, 3))


# -- the flow distribution ----------------------------------------------------------------------------


def _plane_flows() -> list[FlowNet]:
    torch.manual_seed(0)
    flows = [
        RealNVPNet(2, layers=4, hidden=[16], norm=None),
        MAFNet(2, layers=3, hidden=[16], norm=None),
        MAFNet(2, layers=2, hidden=[16], context_dim=1, norm=None),
    ]
    return [perturb(net.double(), i, scale=0.1).eval() for i, net in enumerate(flows)]


def _grid(half_width: float, n: int) -> tuple[torch.Tensor, float]:
    ticks = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    points = torch.cartesian_prod(ticks, ticks)
    return points, float(ticks[1] - ticks[0]) ** 2


@pytest.mark.parametrize("index", range(3), ids=["realnvp", "maf", "maf_context"])
def test_density_integrates_to_one_and_samples_agree_with_it(index):
    net = _plane_flows()[index]
    context = None if net.context_shape is None else torch.tensor([0.7], dtype=torch.float64)
    flow = FlowDistribution(net, context)
    points, area = _grid(30.0, 801)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
    assert abs(float(density.sum()) * area - 1.0) < 5e-3
    # Goodness of fit: the share of samples in each quadrant around a point near the mode, against
    # the integrated density there.
    centre = points[density.argmax()] + math.sqrt(area) / 2  # between grid points: each cell on one side
    torch.manual_seed(1)
    with torch.no_grad():
        samples = flow.sample((20000,))
    assert samples.shape == (20000, 2)
    for signs in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        quadrant = torch.tensor(signs, dtype=torch.float64)
        p = float(density[((points - centre) * quadrant > 0).all(-1)].sum()) * area
        freq = float(((samples - centre) * quadrant > 0).all(-1).double().mean())
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / 20000) + 5e-3


def test_maf_fitted_to_a_gaussian_recovers_it():
    torch.manual_seed(0)
    target = pyro.distributions.MultivariateNormal(
        torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    )
    net = MAFNet(2, layers=2, hidden=[32])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        loss = -FlowDistribution(net).log_prob(target.sample((256,))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow = FlowDistribution(net.eval())
    with torch.no_grad():
        x = target.sample((5000,))
        forward_kl = (target.log_prob(x) - flow.log_prob(x)).mean()
        own = flow.sample((5000,))  # the reverse KL needs the flow's samples and its density to agree
        reverse_kl = (flow.log_prob(own) - target.log_prob(own)).mean()
    assert 0 <= forward_kl < 0.02
    assert -0.01 < reverse_kl < 0.02


def test_flow_distribution_shapes_plates_and_reparameterised_samples():
    torch.manual_seed(0)
    net = MAFNet(3, layers=2, hidden=[8], context_dim=2)
    context = torch.randn(5, 2)
    flow = FlowDistribution(net, context)
    assert flow.batch_shape == (5,) and flow.event_shape == (3,)
    assert flow.log_prob(torch.randn(4, 5, 3)).shape == (4, 5)
    draws = flow.rsample((4,))
    assert draws.shape == (4, 5, 3)
    draws.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    unconditional = FlowDistribution(MAFNet(3, layers=1, hidden=[8]))
    with pyro.plate("data", 6):
        assert pyro.sample("x", unconditional, obs=torch.randn(6, 3)).shape == (6, 3)
    trace = pyro.poutine.trace(lambda: pyro.sample("x", unconditional.expand([6]), obs=torch.randn(6, 3)))
    assert trace.get_trace().log_prob_sum().isfinite()


def test_flow_distribution_rejects_bad_values_and_contexts():
    flow = FlowDistribution(RealNVPNet(3, layers=2, hidden=[8], logit=0.05))
    with pytest.raises(DataError, match=r"event shape \(3,\), got a value of shape \(2, 4\)"):
        flow.log_prob(torch.zeros(2, 4))
    with pytest.raises(DataError, match="finite values, got 1 NaN"):
        flow.log_prob(torch.tensor([[0.5, float("nan"), 0.5]]))
    with pytest.raises(DataError, match="open interval"):
        flow.log_prob(torch.tensor([[0.5, 2.0, 0.5]]))
    with pytest.raises(DataError, match="takes no context"):
        FlowDistribution(RealNVPNet(3, layers=1, hidden=[8]), torch.zeros(2, 1))
    with pytest.raises(DataError, match=r"context of shape \(\.\.\., 2\), got shape \(4, 3\)"):
        FlowDistribution(MAFNet(3, layers=1, hidden=[8], context_dim=2), torch.zeros(4, 3))
    with pytest.raises(ModelError, match="expects a pplgen.nn.flows.FlowNet"):
        FlowDistribution(torch.nn.Linear(3, 3))


# -- dequantisation -------------------------------------------------------------------------------------


def test_dequantised_standard_normal_matches_its_closed_forms_in_nats():
    # With an empty flow the continuous density is N(0, I), so every quantity has a closed form.
    levels, x = 4, torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64)
    normal = torch.distributions.Normal(torch.zeros((), dtype=torch.float64), 1.0)
    exact = (normal.cdf((x + 1) / levels) - normal.cdf(x / levels)).log().sum()  # log P(x)
    # E_u log N((x + u)/K) - D log K, with E[(x + u)^2] = x^2 + x + 1/3
    bound = (-0.5 * math.log(2 * math.pi) - (x**2 + x + 1 / 3) / (2 * levels**2) - math.log(levels)).sum()
    assert bound < exact
    one_draw = Dequantized(FlowDistribution(FlowNet(3)), levels)
    torch.manual_seed(0)
    estimates = one_draw.log_prob(x.expand(40000, 3))
    assert estimates.shape == (40000,)
    assert abs(float(estimates.mean() - bound)) < 4 * float(estimates.std()) / 200
    many = Dequantized(FlowDistribution(FlowNet(3)), levels, num_noise=4000)
    assert abs(float(many.log_prob(x) - exact)) < 2e-3


def test_dequantised_samples_are_levels_in_the_data_form():
    torch.manual_seed(0)
    binary = Dequantized(FlowDistribution(FlowNet(1)), 2).sample((40000,))
    assert binary.dtype == torch.float32 and set(binary.unique().tolist()) == {0.0, 1.0}
    p_one = 1 - torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(0.5))  # v >= 1/2
    assert abs(float(binary.mean() - p_one)) < 5 * math.sqrt(p_one * (1 - p_one) / 40000)
    discrete = Dequantized(FlowDistribution(FlowNet(2)), 17).expand([3]).sample((5,))
    assert discrete.shape == (5, 3, 2) and discrete.dtype == torch.int64
    assert discrete.min() >= 0 and discrete.max() <= 16


def test_dequantized_rejects_values_that_are_not_levels():
    binary = Dequantized(FlowDistribution(FlowNet(2)), 2)
    with pytest.raises(DataError, match=r"integer levels 0 .. 1, got 1 values outside, e.g. 0.5"):
        binary.log_prob(torch.tensor([[0.0, 0.5]]))
    with pytest.raises(DataError, match=r"levels 0 .. 16, got 1 values outside, e.g. 17"):
        Dequantized(FlowDistribution(FlowNet(2)), 17).log_prob(torch.tensor([[3, 17]]))
    with pytest.raises(DataError, match=r"event shape \(2,\), got a value of shape \(3,\)"):
        binary.log_prob(torch.zeros(3))
    with pytest.raises(ModelError, match="num_levels >= 2"):
        Dequantized(FlowDistribution(FlowNet(2)), 1)


# -- the zoo models -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load("digits"), load("digits", "valid")


@pytest.mark.parametrize("cls", [RealNVPModel, MAFModel], ids=["realnvp", "maf"])
def test_zoo_flows_are_exact_and_learn_binary_digits(cls, digits):
    train, valid = digits
    model = cls.from_dataset(train)
    graph = pplgen.inspect(model.model, train.x[:8])
    assert graph.graph["family"] == "exact"
    assert graph.nodes["x"]["dist"] == "Dequantized" and graph.nodes["x"]["event_shape"] == (64,)
    torch.manual_seed(0)
    before = pplgen.log_likelihood(model.model, valid.x)
    result = pplgen.fit(model.model, train.x, epochs=2, batch_size=64, seed=0, progress=False)
    after = pplgen.log_likelihood(result, valid.x)
    assert [set(row) >= {"nll", "val_nll"} for row in result.history] == [True, True]
    assert after.shape == (180,) and float(after.mean()) > float(before.mean()) + 5.0
    assert float(after.mean()) < 0  # a lower bound on the log-probability of discrete images
    bits = pplgen.bits_per_dim(result, valid.x)
    assert 0 < bits < 1  # nats per image / (64 ln 2): below the 1 bit of a fair coin per pixel
    samples = pplgen.sample(result, 6)
    assert samples.shape == (6, 64) and set(samples.unique().tolist()) <= {0.0, 1.0}


def test_zoo_flow_on_digit_levels_samples_levels(digits):
    train = load("digits", variant="levels")
    model = MAFModel.from_dataset(train, layers=2)
    assert model.config["num_levels"] == 17 and model.config["hidden"] == [128]
    result = pplgen.fit(model.model, train.x, epochs=1, batch_size=128, seed=0, progress=False)
    ll = pplgen.log_likelihood(result, train.x[:50])
    assert ll.isfinite().all() and float(ll.mean()) < 0
    samples = pplgen.sample(result, 4)
    assert samples.dtype == torch.int64 and samples.min() >= 0 and samples.max() <= 16


def test_zoo_flow_on_continuous_data_is_an_exact_density():
    ring = load("ring8", num_points=2000)
    model = RealNVPModel.from_dataset(ring, layers=4, hidden=[32])
    assert model.config["num_levels"] is None and model.config["image_shape"] is None
    result = pplgen.fit(model.model, ring.x, epochs=3, batch_size=200, lr=3e-3, seed=0, progress=False)
    assert result.history[-1]["val_nll"] < result.history[0]["val_nll"]
    points, area = _grid(3.0, 301)
    ll = pplgen.log_likelihood(result, points)
    assert abs(float(ll.exp().sum()) * area - 1.0) < 0.02  # nearly all the mass lies near the ring
    assert pplgen.sample(result, 5).shape == (5, 2)


@pytest.mark.parametrize("norm", ["actnorm", "batchnorm"])
def test_zoo_flow_result_saves_and_loads(norm, digits, tmp_path):
    train, valid = digits
    model = MAFModel.from_dataset(train, layers=2, hidden=[32], norm=norm)
    result = pplgen.fit(model.model, train.x, epochs=1, batch_size=128, seed=0, progress=False)
    result.save(tmp_path / "maf.pt")
    fresh = MAFModel(**model.config)
    loaded = pplgen.FitResult.load(tmp_path / "maf.pt", fresh.model)
    torch.manual_seed(0)
    expected = pplgen.log_likelihood(result, valid.x)
    torch.manual_seed(0)
    got = pplgen.log_likelihood(loaded, valid.x)
    assert torch.equal(got, expected)  # BatchNorm's running statistics travel with the parameters


def test_zoo_config_rebuilds_the_model(digits):
    model = RealNVPModel.from_dataset(digits[0], layers=2)
    assert model.config["image_shape"] == [8, 8]
    twin = RealNVPModel(**model.config)
    twin.load_state_dict(model.state_dict())
    x = digits[1].x[:5]
    torch.manual_seed(0)
    a = model.distribution().log_prob(x)
    torch.manual_seed(0)
    assert torch.equal(twin.distribution().log_prob(x), a)


def _messages(exc: BaseException | None) -> str:
    """The messages of an exception and of the exceptions it was raised from."""
    return "" if exc is None else f"{exc}\n{_messages(exc.__cause__)}"


def test_zoo_flows_reject_bad_data(digits):
    train, _ = digits
    tokens = Dataset(name="text", split="train", kind="token", x=torch.zeros(4, 8, dtype=torch.long))
    with pytest.raises(DataError, match="binary, discrete or continuous vectors, but 'text' is 'token'"):
        MAFModel.from_dataset(tokens)
    model = MAFModel.from_dataset(train, layers=1)
    with pytest.raises(DataError, match=r"expected data of shape \(N, 64\), got shape \(\d+, 63\)"):
        pplgen.fit(model.model, train.x[:10, :63], epochs=1, progress=False)
    with pytest.raises(PplgenError) as info:
        pplgen.log_likelihood(model.model, train.x[:10] * 0 + 0.5)
    assert "integer levels 0 .. 1, got 640 values outside, e.g. 0.5" in _messages(info.value)
    with pytest.raises(DataError, match="num_levels >= 2"):
        RealNVPModel(4, num_levels=1)


def test_evaluation_names_the_dequantised_bound_rather_than_calling_it_exact():
    train = load("digits", "train")
    module = MAFModel.from_dataset(train, hidden=[16], layers=1)
    pyro.set_rng_seed(0)
    values, found = pplgen.evaluate.estimate(module.model, train.x[:20])
    assert found.estimator.startswith("dequantised: a stochastic lower bound")
    assert found.mean == pytest.approx(values.mean().item())
