"""DRAW: the attention filterbanks' identities, the program's graph and guide, training and evaluation."""

import math

import pyro
import pytest
import torch

import pplgen
from pplgen import data as datasets
from pplgen.errors import DataError, ModelError
from pplgen.models.draw import DRAW, SMALL_IMAGE_SETTINGS
from pplgen.nn.draw import (
    AttentionReader,
    AttentionWriter,
    Filters,
    GaussianAttention,
    filterbank,
    read_glimpse,
    write_glimpse,
)

SMALL = {"steps": 4, "z_dim": 4, "hidden": 32, "read_n": 3, "write_n": 3}


def random_filters(batch, n, height, width, generator):
    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    stride, variance = uniform(0.2, 3.0), uniform(0.05, 4.0)
    fy = filterbank(uniform(-2, height + 1), stride, variance, n, height)
    fx = filterbank(uniform(-2, width + 1), stride, variance, n, width)
    return Filters(fy, fx, uniform(0.5, 2.0))


def identity_attention(hidden, size):
    """A window that reads a size x size image pixel for pixel: centred, stride 1, variance 1e-4."""
    attention = GaussianAttention(hidden, (size, size), size)
    with torch.no_grad():
        attention.layer.weight.zero_()
        attention.layer.bias.copy_(torch.tensor([0.0, 0.0, math.log(1e-4), 0.0, 0.0]))
    return attention


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits").x, datasets.load("digits", split="valid").x


# -- filterbanks -----------------------------------------------------------------------------------------
def test_filterbank_rows_are_normalised_even_far_outside_the_image():
    g = torch.Generator().manual_seed(0)
    center = torch.cat([torch.rand(50, generator=g) * 40 - 15, torch.tensor([-1e3, 1e3])])
    stride = torch.rand(52, generator=g) * 3
    variance = torch.cat([torch.rand(50, generator=g) * 10, torch.tensor([1e-12, 1e-12])])
    bank = filterbank(center, stride, variance, 5, 11)
    assert bank.shape == (52, 5, 11)
    assert torch.isfinite(bank).all() and (bank >= 0).all()
    assert torch.allclose(bank.sum(-1), torch.ones(52, 5), atol=1e-6)


def test_filter_centres_follow_the_grid():
    # With a large image and a small variance, each filter's mean pixel is its grid point mu_i.
    center, stride = torch.tensor([20.0, 31.5]), torch.tensor([2.0, 3.5])
    bank = filterbank(center, stride, torch.tensor([0.5, 0.5]), 4, 64)
    means = (bank * torch.arange(64.0)).sum(-1)
    expected = center[:, None] + (torch.arange(4.0) - 1.5) * stride[:, None]
    assert torch.allclose(means, expected, atol=1e-4)


def test_identity_filterbanks_read_and_write_the_image_itself():
    # stride 1, tiny variance and N = image size make F_Y and F_X identity matrices, also when H != W.
    height, width = 5, 7
    images = torch.rand(3, height, width, generator=torch.Generator().manual_seed(1))

    def eye(size):
        return filterbank(torch.full((3,), (size - 1) / 2), torch.ones(3), torch.full((3,), 1e-4), size, size)

    filters = Filters(eye(height), eye(width), torch.ones(3))
    assert torch.allclose(filters.fy, torch.eye(height).expand(3, -1, -1), atol=1e-6)
    assert torch.allclose(read_glimpse(images, filters), images, atol=1e-6)
    assert torch.allclose(write_glimpse(read_glimpse(images, filters), filters), images, atol=1e-6)


def test_read_and_write_are_adjoint_up_to_the_intensity():
    # <gamma F_Y x F_X^T, w> = gamma^2 <x, (1 / gamma) F_Y^T w F_X>
    g = torch.Generator().manual_seed(2)
    filters = random_filters(4, 3, 6, 9, g)
    x, w = torch.randn(4, 6, 9, generator=g), torch.randn(4, 3, 3, generator=g)
    left = (read_glimpse(x, filters) * w).sum((-1, -2))
    right = filters.gamma**2 * (x * write_glimpse(w, filters)).sum((-1, -2))
    assert torch.allclose(left, right, rtol=1e-5, atol=1e-5)


def test_an_untrained_window_is_centred_and_spans_the_longer_side():
    attention = GaussianAttention(8, (6, 10), 4)
    with torch.no_grad():
        attention.layer.weight.zero_()
        attention.layer.bias.zero_()
    center_y, center_x, stride, variance, gamma = attention.window(torch.randn(2, 8))
    assert torch.allclose(center_y, torch.tensor(2.5)) and torch.allclose(center_x, torch.tensor(4.5))
    assert torch.allclose(stride * 3, torch.tensor(9.0))
    assert torch.allclose(variance, torch.tensor(1.0)) and torch.allclose(gamma, torch.tensor(1.0))


def test_attention_reader_with_an_identity_window_returns_image_and_error():
    reader = AttentionReader(8, (6, 6), 6)
    reader.attention = identity_attention(8, 6)
    g = torch.Generator().manual_seed(3)
    x, x_hat = torch.rand(2, 6, 6, generator=g), torch.randn(2, 6, 6, generator=g)
    out = reader(x, x_hat, torch.randn(2, 8, generator=g))
    assert torch.allclose(out, torch.cat([x.flatten(1), x_hat.flatten(1)], 1), atol=1e-6)


def test_write_after_read_shapes_on_a_non_square_image():
    height, width, hidden = 5, 9, 16
    reader, writer = AttentionReader(hidden, (height, width), 2), AttentionWriter(hidden, (height, width), 3)
    x, h = torch.rand(7, height, width), torch.randn(7, hidden)
    assert reader(x, x - 0.5, h).shape == (7, 2 * 2 * 2)
    assert writer(h).shape == (7, height, width)
    glimpse = read_glimpse(x, reader.attention(h))
    assert glimpse.shape == (7, 2, 2)
    assert write_glimpse(glimpse, reader.attention(h)).shape == (7, height, width)


# -- the program -----------------------------------------------------------------------------------------
def test_graph_is_a_latent_chain_observing_x(digits):
    x, _ = digits
    module = DRAW((8, 8), **{**SMALL, "steps": 5})
    graph = pplgen.inspect(module.model, x[:6])
    names = [f"z_{t}" for t in range(5)]
    assert graph.graph["family"] == "latent"
    assert graph.graph["chains"] == {"z_t": names}
    assert graph.graph["data_plates"] == ("data",)
    assert graph.nodes["x"]["kind"] == "observed" and graph.nodes["x"]["event_shape"] == (64,)
    for name in names:
        node = graph.nodes[name]
        assert node["kind"] == "latent" and node["local"] and node["event_shape"] == (4,)
        assert graph.has_edge(name, "x")  # every step's latent reaches the final canvas
    latents = sorted(n for n, k in graph.nodes(data="kind") if k == "latent")
    assert latents == sorted(names)


@pytest.mark.parametrize("attention", [True, False])
def test_guide_samples_exactly_the_models_latents(attention):
    module = DRAW((5, 7), **SMALL, attention=attention)
    x = torch.bernoulli(torch.full((6, 35), 0.3))
    guide_trace = pyro.poutine.trace(module.guide).get_trace(x)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(module.model, trace=guide_trace)).get_trace(x)
    sampled = {n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and n != "data"}
    latent = {n for n, s in model_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]}
    assert sampled == latent - {"data"} == {f"z_{t}" for t in range(4)}
    for t in range(4):
        assert torch.equal(model_trace.nodes[f"z_{t}"]["value"], guide_trace.nodes[f"z_{t}"]["value"])
        assert guide_trace.nodes[f"z_{t}"]["value"].shape == (6, 4)
    assert torch.isfinite(model_trace.log_prob_sum() - guide_trace.log_prob_sum())


@pytest.mark.parametrize("attention", [True, False])
def test_a_gradient_reaches_every_parameter_from_the_elbo(attention):
    module = DRAW((6, 5), **SMALL, attention=attention)
    x = torch.bernoulli(torch.full((8, 30), 0.4))
    loss = pyro.infer.Trace_ELBO().differentiable_loss(module.model, module.guide, x)
    loss.backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.fixture(scope="module", params=[True, False], ids=["attention", "whole-image"])
def fitted(digits, request):
    x, x_valid = digits
    pyro.set_rng_seed(0)
    module = DRAW((8, 8), **SMALL, attention=request.param)
    return pplgen.fit(module.model, x, module.guide, epochs=5, batch_size=64, lr=1e-2, valid=x_valid, seed=0)


def test_fit_on_digits_lowers_the_validation_loss(fitted):
    assert fitted.family == "latent"
    first, last = fitted.history[0]["val_loss"], fitted.history[-1]["val_loss"]
    assert last < first - 0.5
    assert last < 64 * math.log(2)  # better than a coin per pixel


def test_importance_weighted_likelihood_is_at_least_the_elbo(fitted, digits):
    _, x_valid = digits
    torch.manual_seed(0)
    ll = pplgen.log_likelihood(fitted, x_valid, num_samples=200)
    assert ll.shape == (len(x_valid),) and torch.isfinite(ll).all()
    # one importance sample per point is the ELBO; averaged over many draws it has little noise
    elbo = torch.stack([pplgen.log_likelihood(fitted, x_valid, num_samples=1) for _ in range(40)]).mean()
    assert elbo.item() == pytest.approx(-fitted.history[-1]["val_loss"], abs=0.2)
    assert elbo.item() <= ll.mean().item() < elbo.item() + 5


def test_samples_are_binary_images_of_the_data_shape(fitted):
    samples = pplgen.sample(fitted, 9)
    assert samples.shape == (9, 64)
    assert ((samples == 0) | (samples == 1)).all()
    means = pplgen.sample(fitted, 9, mean=True)
    assert ((means > 0) & (means < 1)).all()


def test_non_square_programs_sample_their_own_shape():
    module = DRAW((5, 7), **SMALL)
    samples = pplgen.sample(module.model, 4, torch.zeros(1, 35))
    assert samples.shape == (4, 35) and ((samples == 0) | (samples == 1)).all()


# -- construction and bad input --------------------------------------------------------------------------
def test_from_dataset_and_config_rebuild_the_same_module():
    train = datasets.load("digits")
    module = DRAW.from_dataset(train)
    assert module.config == {"image_shape": [8, 8], "attention": True, **SMALL_IMAGE_SETTINGS}
    assert DRAW.from_dataset(train, steps=3).steps == 3
    twin = DRAW(**module.config)
    twin.load_state_dict(module.state_dict())  # same parameter names and shapes
    assert DRAW((28, 28)).config["steps"] == 64  # the paper's MNIST settings by default


def test_bad_data_and_settings_raise_pplgen_errors():
    module = DRAW((8, 8), **SMALL)
    with pytest.raises(
        DataError, match=r"expected data of shape \(N, 64\) or \(N, 8, 8\), got shape \(4, 49\)"
    ):
        module.model(torch.zeros(4, 49))
    with pytest.raises(DataError, match=r"got shape \(4, 49\)"):
        module.guide(torch.zeros(4, 49))
    with pytest.raises(DataError, match=r"got shape \(3, 4, 16\)"):
        pplgen.fit(module.model, torch.zeros(3, 4, 16), module.guide, epochs=1)
    with pytest.raises(DataError, match="got dtype torch.int64"):
        module.model(torch.zeros(4, 64, dtype=torch.int64))
    with pytest.raises(DataError, match="has image_shape None"):
        DRAW.from_dataset(datasets.load("ring8", num_points=10))
    with pytest.raises(DataError, match="binary images, but 'digits' is 'discrete'"):
        DRAW.from_dataset(datasets.load("digits", variant="levels"))
    with pytest.raises(ModelError, match="steps must be a positive integer, got 0"):
        DRAW((8, 8), steps=0)
    with pytest.raises(ModelError, match="n must be a positive integer, got 0"):
        DRAW((8, 8), read_n=0)
