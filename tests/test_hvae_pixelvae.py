"""The two-stochastic-layer VAE and the PixelVAE: graphs, guides, gradients, bounds, sampling, errors."""

import math
import re

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

import pplgen
from pplgen import data as datasets
from pplgen.data.dataset import Dataset
from pplgen.errors import DataError
from pplgen.models.hvae import HVAE
from pplgen.models.pixelvae import PixelVAE
from tests.ar_contract import grid


def tiny_hvae_binary():
    return HVAE(dim=6, z1_dim=3, z2_dim=2, hidden1=8, hidden2=5), torch.randint(0, 2, (5, 6)).float()


def tiny_hvae_normal():
    return HVAE(dim=6, z1_dim=3, z2_dim=2, hidden1=8, hidden2=5, likelihood="normal"), torch.randn(5, 6)


def tiny_pixelvae_binary():
    m = PixelVAE((3, 4), z_dim=2, hidden=8, context_dim=4, encoder_channels=3, channels=4, layers=2)
    return m, torch.randint(0, 2, (5, 12)).float()


def tiny_pixelvae_levels():
    m = PixelVAE((3, 4), num_levels=5, z_dim=2, hidden=8, context_dim=4, encoder_channels=3, channels=4)
    return m, torch.randint(0, 5, (5, 12))


TINY = {
    "hvae-bernoulli": tiny_hvae_binary,
    "hvae-normal": tiny_hvae_normal,
    "pixelvae-binary": tiny_pixelvae_binary,
    "pixelvae-levels": tiny_pixelvae_levels,
}


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits"), datasets.load("digits", "valid")


@pytest.fixture(scope="module")
def fitted(digits):
    """Each zoo model sized for the digits and fitted for a few epochs on 512 training images."""
    train, valid = digits
    results = {}
    for cls in (HVAE, PixelVAE):
        m = cls.from_dataset(train)
        results[cls] = pplgen.fit(
            m.model, train.x[:512], m.guide, epochs=4, batch_size=64, lr=3e-3, valid=valid.x, seed=0,
            progress=False,
        )  # fmt: skip
    return results


def sample_site_edges(graph):
    return {(u, v) for u, v in graph.edges if graph.nodes[u]["kind"] != "param"}


# -- the programs' graphs -----------------------------------------------------------------------------
def test_hvae_graph_is_latent_with_the_top_down_chain(digits):
    train, _ = digits
    m = HVAE.from_dataset(train)
    graph = pplgen.inspect(m.model, train.x[:4])
    assert graph.graph["family"] == "latent"
    assert sample_site_edges(graph) == {("z2", "z1"), ("z1", "x")}
    kinds = {n: graph.nodes[n]["kind"] for n in ("z2", "z1", "x")}
    assert kinds == {"z2": "latent", "z1": "latent", "x": "observed"}
    assert all(graph.nodes[n]["local"] and graph.nodes[n]["plates"] == ("data",) for n in kinds)
    assert graph.nodes["x"]["event_shape"] == (64,) and not graph.nodes["x"]["autoregressive"]
    assert graph.nodes["z1"]["event_shape"] == (16,) and graph.nodes["z2"]["event_shape"] == (8,)


def test_pixelvae_graph_is_latent_with_an_autoregressive_likelihood(digits):
    train, _ = digits
    m = PixelVAE.from_dataset(train)
    graph = pplgen.inspect(m.model, train.x[:4])
    assert graph.graph["family"] == "latent"
    assert sample_site_edges(graph) == {("z", "x")}
    assert graph.nodes["z"]["kind"] == "latent" and graph.nodes["x"]["kind"] == "observed"
    assert graph.nodes["x"]["autoregressive"] and graph.nodes["x"]["dist"] == "PixelCNN"
    assert graph.nodes["x"]["event_shape"] == (8, 8) and graph.nodes["x"]["local"]


# -- guides and gradients -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_guide_samples_exactly_the_models_latents(name):
    m, x = TINY[name]()
    graph = pplgen.inspect(m.model, x)
    latents = {n for n, kind in graph.nodes(data="kind") if kind == "latent"}
    guide_trace = pyro.poutine.trace(m.guide).get_trace(x)
    guide_sites = {
        n: s
        for n, s in guide_trace.nodes.items()
        if s["type"] == "sample" and n != "data" and not s["is_observed"]
    }
    assert set(guide_sites) == latents
    model_trace = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=guide_trace)).get_trace(x)
    for n in latents:
        assert torch.equal(model_trace.nodes[n]["value"], guide_sites[n]["value"])
        assert model_trace.nodes[n]["fn"].event_shape == guide_sites[n]["fn"].event_shape
        assert [f.name for f in guide_sites[n]["cond_indep_stack"]] == ["data"]
    assert torch.isfinite(model_trace.log_prob_sum() - guide_trace.log_prob_sum())


@pytest.mark.parametrize("name", list(TINY))
def test_a_gradient_reaches_every_parameter(name):
    m, x = TINY[name]()
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, x)
    loss.backward()
    for key, param in m.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, key


# -- training, bounds, sampling -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [HVAE, PixelVAE])
def test_fit_lowers_the_validation_loss(fitted, cls):
    history = fitted[cls].history
    assert fitted[cls].family == "latent"
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 3
    assert history[-1]["val_loss"] < 64 * math.log(2)  # better than fair coins


@pytest.mark.parametrize("cls", [HVAE, PixelVAE])
def test_importance_estimate_is_at_least_the_elbo(fitted, digits, cls):
    _, valid = digits
    result = fitted[cls]
    torch.manual_seed(0)
    # the ELBO from 10 draws per validation image, so that its mean is sharp enough to compare
    elbo = pplgen.log_likelihood(result, valid.x.repeat(10, 1), num_samples=1).mean()
    ll = pplgen.log_likelihood(result, valid.x, num_samples=50)
    assert ll.shape == (len(valid.x),) and torch.isfinite(ll).all()
    assert ll.mean() >= elbo
    assert ll.mean() > -result.history[-1]["val_loss"] - 0.5  # the trainer's ELBO, up to its noise
    assert ll.mean() < elbo + 10  # a bound that tightens, not one that runs away


def test_hvae_samples_binary_vectors_of_the_datas_shape(fitted):
    torch.manual_seed(0)
    samples = pplgen.sample(fitted[HVAE], 16)
    assert samples.shape == (16, 64)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


def test_pixelvae_samples_binary_images_given_the_latent(fitted):
    torch.manual_seed(0)
    samples = pplgen.sample(fitted[PixelVAE], 16)
    assert samples.shape == (16, 8, 8)
    assert set(samples.unique().tolist()) == {0.0, 1.0}
    # the images that the program draws come from the PixelCNN given h(z) of the z it drew
    m = fitted[PixelVAE].model.__self__  # the fitted module, whose bound method the result holds
    torch.manual_seed(1)
    trace = pyro.poutine.trace(pyro.poutine.uncondition(m.model)).get_trace(torch.zeros(4, 64))
    with torch.no_grad():
        assert torch.allclose(trace.nodes["x"]["fn"].context, m.decoder(trace.nodes["z"]["value"]))


def test_pixelvae_samples_levels_for_k_level_data():
    m, x = tiny_pixelvae_levels()
    samples = pplgen.sample(m.model, 20, data=x)
    assert samples.shape == (20, 3, 4) and samples.dtype == torch.int64
    assert samples.min() >= 0 and samples.max() <= 4


# -- the decoder is a normalised distribution, and sampling agrees with it ---------------------------
@pytest.mark.parametrize("image_shape, num_levels", [((2, 3), 2), ((2, 2), 3)])
def test_decoder_normalises_over_every_image_for_a_fixed_latent(image_shape, num_levels):
    torch.manual_seed(0)
    m = PixelVAE(image_shape, num_levels, z_dim=3, hidden=8, context_dim=4, encoder_channels=2, channels=4)
    z = 2 * torch.randn(2, 3)  # two fixed latents, each its own distribution over images
    levels = [0.0, 1.0] if num_levels == 2 else list(range(num_levels))
    states = grid(levels, image_shape)  # (S, H, W): 64 binary 2x3 images, or 81 ternary 2x2 ones
    with torch.no_grad():
        log_p = m.observation(z).log_prob(states[:, None])  # (S, 2)
    assert log_p.shape == (len(states), 2)
    assert torch.allclose(log_p.logsumexp(0), torch.zeros(2), atol=1e-5)
    assert not torch.allclose(log_p[:, 0], log_p[:, 1])  # the latent changes the distribution


def test_decoder_samples_agree_with_its_log_prob():
    torch.manual_seed(0)
    m = PixelVAE((2, 2), z_dim=2, hidden=8, context_dim=4, encoder_channels=2, channels=4)
    z = torch.tensor([1.5, -1.0])
    d = m.observation(z)
    samples = d.sample((8000,))  # (8000, 2, 2)
    states = grid([0.0, 1.0], (2, 2))
    freq = (samples[:, None] == states).flatten(2).all(-1).float().mean(0)
    with torch.no_grad():
        probs = d.log_prob(states).exp()
    sigma = (probs * (1 - probs) / len(samples)).sqrt()
    assert ((freq - probs).abs() <= 5 * sigma + 1e-4).all()


# -- settings -----------------------------------------------------------------------------------------
def test_from_dataset_sizes_and_config_rebuilds(digits):
    train, _ = digits
    hvae = HVAE.from_dataset(train)
    assert hvae.config == {
        "dim": 64, "z1_dim": 16, "z2_dim": 8, "hidden1": 64, "hidden2": 32, "likelihood": "bernoulli",
    }  # fmt: skip
    mnist_like = Dataset(name="mnist_like", split="train", kind="binary", x=torch.zeros(2, 784))
    paper = HVAE.from_dataset(mnist_like).config
    assert (paper["z1_dim"], paper["z2_dim"], paper["hidden1"], paper["hidden2"]) == (100, 50, 200, 100)
    levels = PixelVAE.from_dataset(datasets.load("digits", variant="levels"), layers=1)
    assert levels.config["num_levels"] == 17 and levels.config["layers"] == 1
    for m in (hvae, levels):
        rebuilt = type(m)(**m.config)
        shapes = {k: v.shape for k, v in m.state_dict().items()}
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_data_of_the_wrong_width_is_refused(name):
    m, x = TINY[name]()
    bad = torch.cat([x, x[:, :1]], dim=1)
    for program in (m.model, m.guide):
        expected = rf"expected data of shape \(N, {x.shape[1]}\).*got {re.escape(str(tuple(bad.shape)))}"
        with pytest.raises(DataError, match=expected):
            program(bad)


def test_values_outside_the_support_are_refused(digits):
    train, _ = digits
    bad = train.x[:32].clone()
    bad[3, 5] = 0.5
    m = HVAE.from_dataset(train)
    with pytest.raises(
        DataError, match=r"site 'x' \(Bernoulli\).*1 observed values lie outside it, e.g. 0.5"
    ):
        pplgen.fit(m.model, bad, m.guide, epochs=1, progress=False)
    m = PixelVAE.from_dataset(train)
    with pytest.raises(DataError, match="PixelVAE: expected pixels 0 or 1, got 1 outside, e.g. 0.5"):
        pplgen.fit(m.model, bad, m.guide, epochs=1, progress=False)
    with pytest.raises(DataError, match="PixelVAE: expected pixels 0 or 1"):
        pplgen.log_likelihood(m.model, bad, m.guide, num_samples=2)
    m = PixelVAE.from_dataset(datasets.load("digits", variant="levels"))
    for program in (m.model, m.guide):
        with pytest.raises(DataError, match="expected pixels integers 0 .. 16, got 2 outside, e.g. 17"):
            program(torch.tensor([[17] + [0] * 63, [3] * 63 + [-1]]))


def test_data_sets_the_models_cannot_describe_are_refused():
    ring = datasets.load("ring8", num_points=10)
    with pytest.raises(DataError, match="PixelVAE models images.*'ring8' has no image_shape"):
        PixelVAE.from_dataset(ring)
    with pytest.raises(DataError, match="HVAE models binary or continuous data, but 'digits' is 'discrete'"):
        HVAE.from_dataset(datasets.load("digits", variant="levels"))
    continuous = Dataset(
        name="blobs", split="train", kind="continuous", x=torch.zeros(3, 64), image_shape=(8, 8)
    )
    with pytest.raises(DataError, match="binary or discrete pixels, but 'blobs' is 'continuous'"):
        PixelVAE.from_dataset(continuous)
