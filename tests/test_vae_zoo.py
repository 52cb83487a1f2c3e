"""The VAE family: the discretised logistic, the conv networks, and the zoo's VAE and CVAE programs."""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

import pplgen
from pplgen import data as datasets
from pplgen.distributions.logistic import DiscretizedLogistic
from pplgen.errors import DataError, ModelError
from pplgen.models.cvae import CVAE
from pplgen.models.vae import IWAE_MNIST, VAE
from pplgen.nn.conv import ConvDecoder, ConvEncoder

SMALL = {"z_dim": 4, "hidden": 64, "channels": 8}
CASES = [(likelihood, arch) for likelihood in ("bernoulli", "normal", "logistic") for arch in ("mlp", "conv")]


@pytest.fixture(scope="module")
def digits():
    return {"binary": datasets.load("digits"), "levels": datasets.load("digits", variant="levels")}


def _data_for(digits, likelihood):
    return digits["levels"] if likelihood == "logistic" else digits["binary"]


def _reference_mass(loc, scale, k, num_levels):
    """The bin masses by subtracting distribution functions directly (float64, moderate parameters)."""
    h = 1.0 / (num_levels - 1)
    centre = 2 * k / (num_levels - 1) - 1
    upper = torch.where(k == num_levels - 1, torch.tensor(1.0), torch.sigmoid((centre + h - loc) / scale))
    lower = torch.where(k == 0, torch.tensor(0.0), torch.sigmoid((centre - h - loc) / scale))
    return upper - lower


# --- the discretised logistic -------------------------------------------------------------------------


@pytest.mark.parametrize("num_levels", [2, 5, 17, 256])
def test_logistic_sums_to_one_over_its_levels(num_levels):
    loc = torch.linspace(-3, 3, 13)[:, None]
    scale = torch.logspace(-4, 3, 8)
    d = DiscretizedLogistic(loc, scale, num_levels)  # batch (13, 8)
    levels = d.enumerate_support()  # (K, 13, 8)
    assert levels.shape == (num_levels, 13, 8) and levels.dtype == torch.long
    assert torch.allclose(d.log_prob(levels).logsumexp(0), torch.zeros(13, 8), atol=2e-5)
    d64 = DiscretizedLogistic(loc.double(), scale.double(), num_levels)
    assert torch.allclose(
        d64.log_prob(levels).logsumexp(0), torch.zeros(13, 8, dtype=torch.float64), atol=1e-12
    )


def test_logistic_is_the_mass_of_each_bin():
    loc = torch.tensor([-0.7, 0.0, 0.3, 1.2], dtype=torch.float64)[:, None]
    scale = torch.tensor([0.05, 0.3, 2.0], dtype=torch.float64)
    k = torch.arange(9, dtype=torch.float64)[:, None, None]
    d = DiscretizedLogistic(loc, scale, 9)
    assert torch.allclose(d.log_prob(k).exp(), _reference_mass(loc, scale, k, 9), rtol=1e-10, atol=1e-14)
    assert torch.equal(d.log_prob(k.long()), d.log_prob(k))  # levels as long or as float


def test_logistic_samples_follow_its_probabilities():
    torch.manual_seed(0)
    d = DiscretizedLogistic(torch.tensor([-0.6, 0.1, 0.9]), torch.tensor([0.3, 0.05, 0.6]), 5)
    n = 20000
    samples = d.sample((n,))  # (n, 3)
    assert samples.dtype == torch.long and d.support.check(samples).all()
    freq = torch.stack([(samples == k).float().mean(0) for k in range(5)])  # (5, 3)
    prob = d.log_prob(torch.arange(5)[:, None]).exp()
    sigma = (prob * (1 - prob) / n).sqrt()
    assert ((freq - prob).abs() <= 5 * sigma + 1e-4).all()


def test_logistic_is_finite_for_extreme_locations_and_scales():
    loc = torch.tensor([-1e3, -5.0, 0.0, 0.1, 5.0, 1e3])[:, None].requires_grad_()
    scale = torch.tensor([1e-6, 1e-3, 1.0, 1e3, 1e6]).requires_grad_()
    d = DiscretizedLogistic(loc, scale, 17)
    log_p = d.log_prob(torch.arange(17)[:, None, None])  # (17, 6, 5)
    assert torch.isfinite(log_p).all() and (log_p <= 0).all()
    assert torch.allclose(log_p.logsumexp(0), torch.zeros(6, 5), atol=1e-4)
    log_p.sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()


def test_logistic_limits_have_closed_forms():
    # a very narrow logistic puts all its mass on the level whose bin holds the location: 0.1 -> 8.8 -> 9
    narrow = DiscretizedLogistic(torch.tensor(0.1), torch.tensor(1e-6), 17)
    assert narrow.log_prob(torch.tensor(9)).abs() < 1e-6
    # a very wide one has the density 1/(4s) at its centre, so an interior bin of width 2h has 2h/(4s),
    # a mass far below where subtracting sigmoids in float32 would still resolve it
    s = 1e6
    wide = DiscretizedLogistic(torch.tensor(0.0), torch.tensor(s), 17)
    expected = math.log(2 / 16 / (4 * s))
    assert wide.log_prob(torch.tensor(8)).item() == pytest.approx(expected, rel=1e-5)


def test_logistic_mean_and_variance_match_the_enumeration():
    loc = torch.tensor([-1.5, -0.2, 0.4, 2.0], dtype=torch.float64)[:, None]
    scale = torch.tensor([0.01, 0.3, 3.0], dtype=torch.float64)
    d = DiscretizedLogistic(loc, scale, 7)
    k = torch.arange(7, dtype=torch.float64)[:, None, None]
    prob = d.log_prob(k).exp()
    mean = (prob * k).sum(0)
    assert torch.allclose(d.mean, mean, atol=1e-10)
    assert torch.allclose(d.variance, (prob * (k - mean) ** 2).sum(0), atol=1e-10)


def test_logistic_expands_and_checks_its_arguments():
    d = DiscretizedLogistic(torch.zeros(2), torch.ones(2), 4).expand((3, 2))
    assert d.batch_shape == (3, 2) and d.sample().shape == (3, 2) and d.num_levels == 4
    assert d.support.upper_bound == 3 and d.support.is_discrete
    with pytest.raises(ModelError, match="num_levels >= 2.*got 1"):
        DiscretizedLogistic(torch.zeros(2), torch.ones(2), 1)


# --- the convolutional networks -----------------------------------------------------------------------


@pytest.mark.parametrize("image_shape", [(8, 8), (28, 28), (3, 9, 7), (1, 5, 5)])
def test_conv_networks_fit_any_image_size_and_train_every_parameter(image_shape):
    torch.manual_seed(0)
    encoder = ConvEncoder(image_shape, out_features=6, channels=4, hidden=16, context_features=3)
    decoder = ConvDecoder(5, image_shape, out_channels=2, channels=4, hidden=16)
    x = torch.randn(2, 3, *image_shape)  # two leading batch dimensions
    context = torch.randn(3, 3)  # broadcasts over the first
    features = encoder(x, context)
    images = decoder(torch.randn(2, 3, 5))
    assert features.shape == (2, 3, 6)
    assert images.shape == (2, 3, 2, *image_shape[-2:])
    (features.square().sum() + images.square().sum()).backward()
    for name, p in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_conv_networks_name_the_shapes_they_expect():
    encoder = ConvEncoder((8, 8), out_features=4, channels=2, hidden=8, context_features=2)
    with pytest.raises(DataError, match=r"shape \(\.\.\., 8, 8\), got shape \(5, 64\)"):
        encoder(torch.zeros(5, 64), torch.zeros(5, 2))
    with pytest.raises(DataError, match=r"context of shape \(\.\.\., 2\), got None"):
        encoder(torch.zeros(5, 8, 8))
    with pytest.raises(DataError, match=r"\(\.\.\., 3\), got \(5, 4\)"):
        ConvDecoder(3, (8, 8), 1, channels=2, hidden=8)(torch.zeros(5, 4))
    with pytest.raises(ModelError, match="image_shape must be"):
        ConvEncoder((8,), out_features=4)


# --- the VAE program ----------------------------------------------------------------------------------


def _sites(program, *args):
    trace = poutine.trace(program).get_trace(*args)
    return {
        n
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
    }


def _all_parameters_get_gradients(module, *args):
    for p in module.parameters():
        p.grad = None
    loss = pyro.infer.Trace_ELBO().differentiable_loss(module.model, module.guide, *args)
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("likelihood, arch", CASES)
def test_vae_program_contract(digits, likelihood, arch):
    data = _data_for(digits, likelihood)
    torch.manual_seed(0)
    vae = VAE.from_dataset(data, likelihood=likelihood, arch=arch, **SMALL)
    assert VAE(**vae.config).state_dict().keys() == vae.state_dict().keys()
    x = data.x[:32]
    graph = pplgen.inspect(vae.model, x)
    assert graph.graph["family"] == "latent"
    latents = {n for n, k in graph.nodes(data="kind") if k == "latent"}
    assert latents == {"z"} == _sites(vae.guide, x)
    assert graph.nodes["x"]["event_shape"] == (64,) and graph.nodes["x"]["local"]
    _all_parameters_get_gradients(vae, x)


@pytest.mark.parametrize("likelihood, arch", CASES)
def test_vae_trains_and_its_importance_sampled_likelihood_beats_the_elbo(digits, likelihood, arch):
    data = _data_for(digits, likelihood)
    torch.manual_seed(0)
    vae = VAE.from_dataset(data, likelihood=likelihood, arch=arch, **SMALL)
    x = data.x[:320]
    result = pplgen.fit(vae.model, x, vae.guide, epochs=6, batch_size=64, lr=3e-3, seed=0, progress=False)
    val = [row["val_loss"] for row in result.history]
    assert val[-1] < val[0] - 1.0
    points = data.x[320:420]
    log_p = pplgen.log_likelihood(result, points, num_samples=64)
    # one importance sample is the ELBO; averaged over 20 draws per point it is a sharp estimate of it
    elbo = pplgen.log_likelihood(result, points.repeat(20, 1), num_samples=1).reshape(20, -1).mean(0)
    assert log_p.shape == (100,) and torch.isfinite(log_p).all()
    assert log_p.mean() > elbo.mean()
    samples = pplgen.sample(result, 16)
    assert samples.shape == (16, 64)
    support = vae.observation(torch.zeros(1, SMALL["z_dim"])).support
    assert support.check(samples.to(vae._dtype) if likelihood != "logistic" else samples).all()


def test_vae_keeps_its_original_arguments_and_defaults():
    vae = VAE(64, 4, 32, "normal")  # the positional form older code uses
    assert (vae.z_dim, vae.likelihood, vae.arch) == (4, "normal", "mlp")
    assert [m.out_features for m in vae.decoder if isinstance(m, torch.nn.Linear)] == [32, 32, 64]
    assert VAE(64).config == {
        "dim": 64,
        "z_dim": 8,
        "hidden": 256,
        "likelihood": "bernoulli",
        "arch": "mlp",
        "image_shape": None,
        "num_levels": None,
        "layers": 2,
        "activation": "relu",
        "channels": 32,
    }


def test_iwae_mnist_architecture_is_reachable():
    vae = VAE(784, **IWAE_MNIST)
    widths = [(m.in_features, m.out_features) for m in vae.encoder if isinstance(m, torch.nn.Linear)]
    assert widths == [(784, 200), (200, 200), (200, 100)]  # 100 = location and scale of 50 latents
    widths = [(m.in_features, m.out_features) for m in vae.decoder if isinstance(m, torch.nn.Linear)]
    assert widths == [(50, 200), (200, 200), (200, 784)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in vae.encoder) == 2


def test_vae_from_dataset_picks_the_likelihood_from_the_data_kind(digits):
    assert VAE.from_dataset(digits["binary"]).likelihood == "bernoulli"
    levels = VAE.from_dataset(digits["levels"])
    assert (levels.likelihood, levels.num_levels) == ("logistic", 17)
    ring = datasets.load("ring8", num_points=10)
    assert VAE.from_dataset(ring).likelihood == "normal"
    with pytest.raises(DataError, match="arch='conv' needs images.*'ring8' has no image_shape"):
        VAE.from_dataset(ring, arch="conv")


def test_vae_rejects_bad_data_and_settings(digits):
    vae = VAE(64, z_dim=2, hidden=8)
    x = digits["binary"].x[:10]
    with pytest.raises(DataError, match=r"VAE expects data of shape \(N, 64\), got shape \(10, 63\)"):
        vae.model(x[:, :63])
    with pytest.raises(DataError, match=r"shape \(N, 64\)"):
        vae.guide(x[:, :63])
    with pytest.raises(DataError, match=r"binary data \(0 or 1\).*e\.g\. 0\.5"):
        vae.model(x * 0.5)
    with pytest.raises(DataError, match="binary data"):
        pplgen.fit(vae.model, x * 2, vae.guide, epochs=1, progress=False)
    logistic = VAE(64, z_dim=2, hidden=8, likelihood="logistic", num_levels=17)
    with pytest.raises(DataError, match=r"integer levels 0 \.\. 16.*e\.g\. 17"):
        logistic.model(digits["levels"].x[:10].clamp(min=17))
    with pytest.raises(
        ModelError, match="likelihood must be one of 'bernoulli', 'normal', 'logistic', got 'poisson'"
    ):
        VAE(64, likelihood="poisson")
    with pytest.raises(ModelError, match="needs num_levels"):
        VAE(64, likelihood="logistic")
    with pytest.raises(ModelError, match="arch='conv' needs image_shape"):
        VAE(64, arch="conv")
    with pytest.raises(ModelError, match=r"image_shape \(7, 7\) has 49 entries, but dim is 64"):
        VAE(64, image_shape=(7, 7))


# --- the conditional VAE ------------------------------------------------------------------------------


@pytest.mark.parametrize("prior, arch", [("standard", "mlp"), ("learned", "conv")])
def test_cvae_program_contract(digits, prior, arch):
    data = digits["binary"]
    torch.manual_seed(0)
    cvae = CVAE.from_dataset(data, prior=prior, arch=arch, **SMALL)
    assert CVAE.takes_labels and cvae.num_classes == 10 and cvae.config["prior"] == prior
    x, y = data.x[:32], data.y[:32]
    graph = pplgen.inspect(cvae.model, x, y)
    assert graph.graph["family"] == "latent"
    assert {n for n, k in graph.nodes(data="kind") if k == "latent"} == {"z"} == _sites(cvae.guide, x, y)
    _all_parameters_get_gradients(cvae, x, y)


def test_cvae_draws_from_the_conditional_of_the_label_asked_for(digits):
    data = digits["binary"]
    torch.manual_seed(0)
    cvae = CVAE.from_dataset(data, z_dim=4, hidden=128)
    result = pplgen.fit(
        cvae.model,
        data.tensors(labels=True),
        cvae.guide,
        epochs=20,
        batch_size=64,
        lr=3e-3,
        seed=0,
        progress=False,
    )
    class_means = torch.stack([data.x[data.y == c].mean(0) for c in range(10)])  # (10, 64)
    n = 100
    for label in range(10):
        batch = (torch.zeros(n, 64), torch.full((n,), label))
        drawn_mean = pplgen.sample(result, n, batch, mean=True).mean(0)  # E[x | y] by Monte Carlo
        distances = (class_means - drawn_mean).norm(dim=1)
        assert int(distances.argmin()) == label, (label, distances)
    draws = pplgen.sample(result, 8, (torch.zeros(8, 64), torch.full((8,), 3)))
    assert draws.shape == (8, 64) and ((draws == 0) | (draws == 1)).all()


def test_cvae_rejects_bad_labels(digits):
    cvae = CVAE(64, num_classes=10, z_dim=2, hidden=8)
    x, y = digits["binary"].x[:6], digits["binary"].y[:6]
    with pytest.raises(DataError, match="labels y as integers 0 .. 9.*call model"):
        cvae.model(x)
    with pytest.raises(DataError, match=r"got torch.float32 of shape \(6,\)"):
        cvae.guide(x, y.float())
    with pytest.raises(DataError, match=r"of shape \(6,\), got torch.int64 of shape \(5,\)"):
        cvae.model(x, y[:5])
    with pytest.raises(DataError, match="got labels 0 .. 10"):
        cvae.model(x, torch.tensor([0, 1, 2, 3, 4, 10]))
    with pytest.raises(DataError, match="has none"):
        CVAE.from_dataset(datasets.Dataset("toy", "train", "binary", torch.zeros(3, 4)))
    with pytest.raises(ModelError, match="prior must be one of"):
        CVAE(64, prior="flat")
