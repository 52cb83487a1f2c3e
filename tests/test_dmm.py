"""The deep Markov model: its graph, guide, gradients, training on the digits, and a Kalman-filter check."""

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch import nn

import pplgen
from pplgen import data as datasets
from pplgen.errors import DataError
from pplgen.models.dmm import DMM


def is_random(site) -> bool:
    return site["type"] == "sample" and not site_is_subsample(site)


SMALL = {"z_dim": 4, "transition_dim": 16, "emission_dim": 16, "rnn_dim": 16}


@pytest.fixture(scope="module")
def trained(digits):
    train, valid = digits
    module = DMM.from_dataset(train, z_dim=8, transition_dim=32, emission_dim=32, rnn_dim=32)
    result = pplgen.fit(
        module.model, train.x, module.guide, epochs=5, batch_size=64, lr=1e-2, valid=valid.x, seed=0
    )
    return module, result


# -- structure ------------------------------------------------------------------------------------------
def test_from_dataset_reads_images_as_rows_and_config_rebuilds_it(digits):
    train, _ = digits
    module = DMM.from_dataset(train, **SMALL)
    assert (module.steps, module.x_dim, module.likelihood) == (8, 8, "bernoulli")
    rebuilt = DMM(**json.loads(json.dumps(module.config)))
    rebuilt.load_state_dict(module.state_dict())
    assert rebuilt.config == module.config


def test_graph_is_a_latent_markov_chain(digits):
    train, _ = digits
    graph = pplgen.inspect(DMM.from_dataset(train, **SMALL).model, train.x[:4])
    steps = [f"z_{t}" for t in range(1, 9)]
    assert graph.graph["family"] == "latent"
    assert graph.graph["chains"]["z_t"] == steps
    assert graph.graph["chains"]["x_t"] == [f"x_{t}" for t in range(1, 9)]
    sites = {n for n, kind in graph.nodes(data="kind") if kind != "param"}
    for t in range(1, 9):
        assert graph.nodes[f"z_{t}"]["kind"] == "latent" and graph.nodes[f"x_{t}"]["kind"] == "observed"
        assert graph.nodes[f"x_{t}"]["event_shape"] == (8,)
        # the Markov property: z_t's only random parent is z_{t-1}, x_t's only one is z_t
        expected = {f"z_{t - 1}"} if t > 1 else set()
        assert set(graph.predecessors(f"z_{t}")) & sites == expected
        assert set(graph.predecessors(f"x_{t}")) & sites == {f"z_{t}"}


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_guide_samples_exactly_the_model_latents(digits, rnn):
    train, _ = digits
    module = DMM.from_dataset(train, rnn=rnn, **SMALL)
    x = train.x[:5]
    guide_trace = poutine.trace(module.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(module.model, trace=guide_trace)).get_trace(x)
    guide_sites = {n for n, s in guide_trace.nodes.items() if is_random(s)}
    model_latents = {n for n, s in model_trace.nodes.items() if is_random(s) and not s["is_observed"]}
    assert guide_sites == model_latents == {f"z_{t}" for t in range(1, 9)}
    for name in guide_sites:
        assert guide_trace.nodes[name]["value"].shape == (5, 4)
        assert torch.equal(model_trace.nodes[name]["value"], guide_trace.nodes[name]["value"])


def test_backward_rnn_summarises_the_future_only():
    # h_t reads x_{t:T}: its gradient is zero for earlier steps and non-zero for the others
    module = DMM(steps=5, x_dim=3, **SMALL)
    seq = torch.randn(1, 5, 3, requires_grad=True)
    h = module.backward_states(seq)
    for t in range(5):
        (grad,) = torch.autograd.grad(h[0, t].sum(), seq, retain_graph=True)
        reach = grad[0].abs().sum(1) > 0
        assert reach.tolist() == [s >= t for s in range(5)]


@pytest.mark.parametrize(("rnn", "likelihood"), [("gru", "bernoulli"), ("lstm", "normal")])
def test_a_gradient_reaches_every_parameter(rnn, likelihood):
    module = DMM(steps=4, x_dim=3, rnn=rnn, likelihood=likelihood, **SMALL)
    x = torch.randint(0, 2, (6, 12)).float()
    loss = pyro.infer.Trace_ELBO().differentiable_loss(module.model, module.guide, x)
    loss.backward()
    for name, param in module.named_parameters():
        if likelihood == "bernoulli" and name == "obs_log_scale":
            assert param.grad is None  # the Normal's scale has no part in a Bernoulli likelihood
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# -- training, likelihood, sampling ---------------------------------------------------------------------
def test_fit_lowers_the_validation_loss(trained):
    _, result = trained
    assert result.family == "latent"
    history = result.history
    assert len(history) == 5
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.5
    assert history[-1]["val_loss"] < 64 * math.log(2)  # better than coin flips for every pixel


def test_log_likelihood_is_finite_and_at_least_the_elbo(trained, digits):
    _, result = trained
    _, valid = digits
    ll = pplgen.log_likelihood(result, valid.x, num_samples=50)
    assert ll.shape == (len(valid.x),) and torch.isfinite(ll).all()
    elbo = pplgen.log_likelihood(result, valid.x, num_samples=1)  # one sample: an ELBO estimate
    assert ll.mean() >= elbo.mean()
    assert -ll.mean() <= result.history[-1]["val_loss"] + 0.1


def test_sample_draws_sequences_of_the_data_shape(trained):
    module, result = trained
    draws = pplgen.sample(result, 7)  # the observed chain x_1 .. x_8, stacked along the steps
    assert draws.shape == (7, 8, 8)
    rows = module.as_data(draws)
    assert rows.shape == (7, 64)
    assert set(rows.unique().tolist()) <= {0.0, 1.0}
    probs = module.as_data(pplgen.sample(result, 7, mean=True))
    assert rows.shape == probs.shape and ((probs > 0) & (probs < 1)).all()


# -- a closed form: a linear-Gaussian state-space model written with the DMM's own modules -------------------
A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]])
C = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
Z_INIT = torch.tensor([0.5, -0.3])
Q_STD, R_STD, T = 0.5, 0.6, 3


def linear_gaussian_dmm() -> DMM:
    """z_t ~ N(A z_{t-1}, Q_STD^2 I), x_t ~ N(C z_t, R_STD^2 I): the gate shut, the emitter linear."""
    module = DMM(steps=T, x_dim=2, z_dim=2, transition_dim=4, emission_dim=4, rnn_dim=4, likelihood="normal")
    transition = module.transition
    with torch.no_grad():
        transition.gate[-1].weight.zero_()
        transition.gate[-1].bias.fill_(-1e3)  # sigmoid(-1000) is exactly 0 in float32
        transition.linear.weight.copy_(A)
        transition.linear.bias.zero_()
        transition.scale.weight.zero_()
        transition.scale.bias.fill_(math.log(math.expm1(Q_STD)))  # softplus^-1
        module.obs_log_scale.fill_(math.log(R_STD))
        module.z_init.copy_(Z_INIT)
    module.emitter = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        module.emitter.weight.copy_(C)
    return module


def kalman_log_likelihood(x: torch.Tensor) -> torch.Tensor:
    """log p(x_{1:T}) of the linear-Gaussian model by the Kalman filter's prediction errors (Kalman 1960)."""
    a, c, eye = A.double(), C.double(), torch.eye(2, dtype=torch.float64)
    q, r = Q_STD**2 * eye, R_STD**2 * eye
    mean = (a @ Z_INIT.double()).expand(len(x), 2)
    cov = q
    total = torch.zeros(len(x), dtype=torch.float64)
    for t in range(T):
        s = c @ cov @ c.T + r
        total = total + dist.MultivariateNormal(mean @ c.T, covariance_matrix=s).log_prob(x[:, t].double())
        gain = cov @ c.T @ torch.linalg.inv(s)
        mean = mean + (x[:, t].double() - mean @ c.T) @ gain.T
        cov = (eye - gain @ c) @ cov
        mean, cov = mean @ a.T, a @ cov @ a.T + q
    return total


def dense_log_likelihood(x: torch.Tensor) -> torch.Tensor:
    """The same marginal from the joint Gaussian of all 2T observations, to check the filter."""
    a, c = A.double(), C.double()
    powers = [torch.linalg.matrix_power(a, k) for k in range(T + 1)]
    means = torch.cat([c @ powers[t + 1] @ Z_INIT.double() for t in range(T)])
    # z_t = A^t z_0 + sum_{s<=t} A^{t-s} w_s, so Cov(z_t, z_u) = sum_{s<=min(t,u)} A^{t-s} Q (A^{u-s})^T
    blocks = [[torch.zeros(2, 2, dtype=torch.float64) for _ in range(T)] for _ in range(T)]
    for t in range(T):
        for u in range(T):
            for s in range(min(t, u) + 1):
                blocks[t][u] = blocks[t][u] + Q_STD**2 * powers[t - s] @ powers[u - s].T
            blocks[t][u] = c @ blocks[t][u] @ c.T + (R_STD**2 * torch.eye(2) if t == u else 0)
    cov = torch.cat([torch.cat(row, 1) for row in blocks], 0)
    return dist.MultivariateNormal(means, covariance_matrix=cov).log_prob(x.reshape(len(x), -1).double())


def test_linear_gaussian_dmm_matches_the_kalman_filter():
    module = linear_gaussian_dmm()
    z = torch.randn(100, 2)
    loc, scale = module.transition(z)
    assert torch.allclose(loc, z @ A.T, atol=1e-6) and torch.allclose(scale, torch.full_like(z, Q_STD))

    torch.manual_seed(1)
    x = module.as_data(pplgen.sample(module.model, 6, torch.zeros(6, 2 * T))).reshape(6, T, 2)
    exact = kalman_log_likelihood(x)
    assert torch.allclose(exact, dense_log_likelihood(x), atol=1e-8)
    # the prior as proposal: an unbiased estimate of p(x) whose log converges as K grows
    estimate = pplgen.log_likelihood(module.model, x.reshape(6, -1), num_samples=100_000, max_rows=100_000)
    error = (estimate.double() - exact).abs()
    assert error.mean() < 0.04 and error.max() < 0.1  # a 20 % change of A moves it by 0.2


# -- bad input ------------------------------------------------------------------------------------------
def test_sequences_of_the_wrong_length_raise_data_error(digits):
    train, _ = digits
    module = DMM.from_dataset(train, **SMALL)
    with pytest.raises(DataError, match=r"expected sequences of shape \(N, 64\).*got shape \(5, 60\)"):
        module.model(train.x[:5, :60])
    with pytest.raises(DataError, match="8 steps of 8 dimensions"):
        pplgen.fit(module.model, train.x[:, :56], module.guide, epochs=1)


def test_from_dataset_names_what_it_cannot_read(digits):
    with pytest.raises(DataError, match="binary or continuous.*'discrete'"):
        DMM.from_dataset(datasets.load("digits", "train", variant="levels"))
    ring = datasets.load("ring8", "train")
    with pytest.raises(DataError, match="pass steps=T"):
        DMM.from_dataset(ring)
    assert DMM.from_dataset(ring, steps=2, **SMALL).config["x_dim"] == 1
