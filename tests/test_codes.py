"""Latent codes: encode gives the guide's posterior means, decode the model's observation given codes."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

import pplgen
from pplgen.errors import DataError, ModelError
from pplgen.guides import AmortisedGuide
from pplgen.models import VAE
from tests import programs

Z_DIM = 4


@pytest.fixture(scope="module")
def vae(digits):
    train, valid = digits
    pyro.set_rng_seed(0)
    module = VAE(64, z_dim=Z_DIM, hidden=64, layers=1)
    result = pplgen.fit(module.model, train.x, module.guide, epochs=10, lr=5e-3, valid=valid.x, seed=0)
    assert result.history[-1]["active_units"] == Z_DIM  # no collapsed dimension: every code carries data
    return module, result


def test_codes_are_the_encoders_means(vae, digits):
    module, result = vae
    _, valid = digits
    codes = pplgen.encode(result, valid.x, max_rows=50)  # several passes
    assert codes.shape == (len(valid), Z_DIM) and codes.device.type == "cpu"
    with torch.no_grad():
        loc, _ = module.eval().encode(valid.x)
    assert torch.allclose(codes, loc, atol=1e-5)
    by_site = pplgen.encode(result, valid.x, by_site=True)
    assert list(by_site) == ["z"] and torch.equal(by_site["z"], codes)


def test_decoded_codes_are_probabilities_shaped_like_the_data(vae, digits):
    _, result = vae
    _, valid = digits
    decoded = pplgen.decode(result, pplgen.encode(result, valid.x))
    assert decoded.shape == valid.x.shape
    assert decoded.min() >= 0 and decoded.max() <= 1 and decoded.std() > 0.1


def test_reconstructions_are_closer_to_the_data_than_decoded_prior_draws(vae, digits):
    _, result = vae
    _, valid = digits
    reconstructed = pplgen.reconstruct(result, valid.x)
    from_prior = pplgen.decode(
        result, torch.randn(len(valid), Z_DIM, generator=torch.Generator().manual_seed(0))
    )
    error = (reconstructed - valid.x).square().mean()
    assert error < 0.6 * (from_prior - valid.x).square().mean()
    assert error < 0.1


def test_several_sites_by_site_and_flat_agree():
    """Two local latents of shapes (2,) and (3, 2): the flat codes join them in the guide's order, and
    decode takes either layout."""
    net = nn.Linear(8, 5)

    def model(x):
        pyro.module("net", net)
        with pyro.plate("data", len(x)):
            a = pyro.sample("a", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            b = pyro.sample("b", dist.Normal(0.0, 1.0).expand([3, 2]).to_event(2))
            pyro.sample("x", dist.Bernoulli(logits=net(torch.cat([a, b.flatten(1)], -1))).to_event(1), obs=x)

    x = torch.randint(0, 2, (20, 5)).float()
    result = pplgen.fit(model, x, epochs=2, batch_size=10, valid_fraction=0, seed=0)
    flat = pplgen.encode(result, x)
    by_site = pplgen.encode(result, x, by_site=True)
    assert list(by_site) == ["a", "b"] and by_site["b"].shape == (20, 3, 2)
    assert torch.equal(flat, torch.cat([by_site["a"], by_site["b"].flatten(1)], dim=1))
    assert torch.equal(pplgen.decode(result, flat), pplgen.decode(result, by_site))
    with pytest.raises(DataError, match=r"expected codes of shape \(N, 8\) \(a 2 \+ b 6\)"):
        pplgen.decode(result, flat[:, :5])


def test_a_flow_guide_falls_back_to_the_monte_carlo_mean(digits):
    train, _ = digits
    x = train.x[:5]
    module = VAE(64, z_dim=2, hidden=32)
    guide = AmortisedGuide(module.model, flows=2, hidden=(32,))
    result = pplgen.fit(module.model, train.x[:200], guide, epochs=2, valid_fraction=0, seed=0)
    with torch.no_grad():  # the site has no closed-form mean
        site = poutine.trace(result.guide).get_trace(x).nodes["z"]
    with pytest.raises(NotImplementedError):
        _ = site["fn"].mean
    many = 4000  # the mean of many draws, every point repeated inside the data plate
    with torch.no_grad():
        draws = poutine.trace(result.guide).get_trace(x.repeat(many, 1)).nodes["z"]["value"]
    reference = draws.reshape(many, len(x), 2).mean(0)
    spread = draws.reshape(many, len(x), 2).std(0)
    pyro.set_rng_seed(1)
    codes = pplgen.encode(result, x, num_samples=1000)
    assert ((codes - reference).abs() < 0.2 * spread).all()  # 1000 draws: within 0.06 sd, well inside 0.2
    one, other = (pplgen.encode(result, x, num_samples=1) for _ in range(2))
    assert not torch.equal(one, other)  # a single draw is random: the Monte-Carlo path was taken


def test_errors_name_the_problem(vae, digits):
    _, result = vae
    train, _ = digits
    with pytest.raises(
        DataError, match=r"per-point shape\(s\) \[\(64,\)\], got 1 of per-point shape\(s\) \[\(8, 8\)\]"
    ):
        pplgen.encode(result, train.x[:10].reshape(10, 8, 8))
    with pytest.raises(DataError, match="expected data of 3 points, one per code"):
        pplgen.decode(result, torch.zeros(3, Z_DIM), data=train.x[:4])
    model, (x,) = programs.fvsbn()
    exact = pplgen.fit(model, x, epochs=1, valid_fraction=0, seed=0)
    with pytest.raises(ModelError, match="encoding data needs a guide: an exact model has no latent sites"):
        pplgen.encode(exact, x)
    with pytest.raises(ModelError, match="no local latent"):
        pplgen.decode(exact, torch.zeros(2, 1))
