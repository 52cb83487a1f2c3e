"""The vector quantiser and the VQ-VAE with a PixelCNN prior: estimator identities, the ELBO's sign
conventions, the prior's normalisation, training on digits, sampling, the second stage, bad input."""

import itertools
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

import pplgen
from pplgen.data import Dataset, load
from pplgen.errors import DataError, ModelError
from pplgen.models.vqvae import VQVAE, CodebookPrior
from pplgen.nn.vq import VectorQuantizer, code_perplexity

SMALL = dict(num_codes=16, code_dim=8, channels=32, res_blocks=1, prior_channels=16, prior_layers=3)


@pytest.fixture(scope="module")
def digits():
    return load("digits", "train"), load("digits", "valid")


def _elbo_loss(module, x):
    return Trace_ELBO().differentiable_loss(module.model, module.guide, x)


# -- the vector quantiser ---------------------------------------------------------------------------------
def test_nearest_code_is_chosen_and_returned_exactly():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=7, code_dim=3)
    z = torch.randn(4, 5, 3) * 0.2
    out = vq(z)
    brute = ((z.unsqueeze(-2) - vq.codebook.detach()) ** 2).sum(-1).argmin(-1)  # (4, 5)
    assert out.indices.dtype == torch.int64
    assert torch.equal(out.indices, brute)
    assert torch.equal(out.quantized, vq.codebook.detach()[brute])  # bit for bit, not approximately
    assert torch.equal(vq.nearest(out.quantized), out.indices)  # so a second lookup finds the same codes


def test_straight_through_gradient_is_the_identity():
    torch.manual_seed(1)
    vq = VectorQuantizer(num_codes=5, code_dim=4)
    z_e = torch.randn(6, 4, requires_grad=True)
    weights = torch.randn(6, 4)
    (vq(z_e).quantized * weights).sum().backward()
    assert torch.equal(z_e.grad, weights)  # d z_q / d z_e = I
    assert vq.codebook.grad is None  # the decoder's gradient does not move the codebook


def test_losses_equal_their_formulas_and_reach_only_their_targets():
    torch.manual_seed(2)
    vq = VectorQuantizer(num_codes=5, code_dim=4)
    z_e = torch.randn(3, 2, 4, requires_grad=True)
    out = vq(z_e)
    e = vq.codebook.detach()[out.indices]
    squared = ((z_e.detach() - e) ** 2).sum(-1)
    assert torch.allclose(out.codebook_loss, squared)
    assert torch.allclose(out.commitment_loss, 0.25 * squared)
    assert torch.allclose(out.loss, 1.25 * squared)

    out.codebook_loss.sum().backward(retain_graph=True)
    assert z_e.grad is None  # sg(z_e): the codebook loss moves only the codes
    expected = torch.zeros_like(vq.codebook).index_add_(
        0, out.indices.flatten(), 2 * (e - z_e.detach()).reshape(-1, 4)
    )
    assert torch.allclose(vq.codebook.grad, expected)
    vq.codebook.grad = None
    out.commitment_loss.sum().backward()
    assert vq.codebook.grad is None  # sg(e): the commitment loss moves only the encoder
    assert torch.allclose(z_e.grad, 0.5 * (z_e.detach() - e))


def test_moving_average_codebook_converges_to_the_cluster_means():
    torch.manual_seed(3)
    vq = VectorQuantizer(num_codes=4, code_dim=2, ema_decay=0.8)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0], [0.0, -5.0]]))
        vq.embed_sum.copy_(vq.codebook)
    centres = torch.tensor([[2.0, 0.5], [-1.5, -0.5]])
    z = (centres.repeat(50, 1) + 0.1 * torch.randn(100, 2)).requires_grad_()  # near codes 0 and 1 only
    with torch.no_grad():  # checks and evaluations run under no_grad and must not move the codebook
        vq(z)
    assert torch.equal(vq.codebook[2:], torch.tensor([[0.0, 5.0], [0.0, -5.0]]))
    assert torch.equal(vq.codebook[0], torch.tensor([1.0, 0.0]))
    for _ in range(100):
        out = vq(z)
    means = torch.stack([z.detach()[out.indices == k].mean(0) for k in (0, 1)])
    assert torch.allclose(vq.codebook[:2], means, atol=1e-3)
    assert torch.allclose(vq.codebook[2:], torch.tensor([[0.0, 5.0], [0.0, -5.0]]), atol=1e-3)  # unused: kept
    assert out.codebook_loss.grad_fn is None  # no gradient-based codebook update on top of the averages


def test_perplexity_counts_codes_in_use():
    assert code_perplexity(torch.zeros(10, dtype=torch.long), 4) == pytest.approx(1.0)
    assert code_perplexity(torch.arange(8).repeat(3), 8) == pytest.approx(8.0)
    assert code_perplexity(torch.tensor([0, 0, 0, 1]), 4) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    )


# -- the program's structure ------------------------------------------------------------------------------
def test_graph_is_latent_and_the_guide_samples_exactly_the_models_latents(digits):
    train, _ = digits
    module = VQVAE.from_dataset(train, **SMALL)
    x = train.x[:8]
    graph = pplgen.inspect(module.model, x)
    assert graph.graph["family"] == "latent"
    codes = graph.nodes["codes"]
    assert codes["kind"] == "latent" and codes["discrete"] and codes["local"]
    assert codes["event_shape"] == (4, 4, 8)
    assert graph.has_edge("codes", "x")
    latents = {n for n, k in graph.nodes(data="kind") if k == "latent"}

    guide_trace = poutine.trace(module.guide).get_trace(x)
    sampled = {
        n
        for n, s in guide_trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
    }
    assert sampled == latents == {"codes"}
    assert guide_trace.nodes["vq_loss"]["is_observed"]  # the VQ losses are a factor, not a latent
    module.eval()
    assert "vq_loss" not in poutine.trace(module.guide).get_trace(x).nodes  # only while training


def test_elbo_adds_the_vq_losses_to_the_loss(digits):
    # Trace_ELBO subtracts the guide's log-densities, factors included, from the ELBO; so the guide's
    # factor +vq_loss must come out added to the loss, next to -log p(x | z_q) - log p(codes).
    train, _ = digits
    module = VQVAE.from_dataset(train, **SMALL)
    x = train.x[:16]
    loss = _elbo_loss(module, x)
    q = module.quantize(x)
    log_joint = module.observation(q.quantized).log_prob(x) + CodebookPrior(
        module.index_prior(), module.quantizer
    ).log_prob(q.quantized)
    assert loss.item() == pytest.approx((q.loss.sum((1, 2)) - log_joint).sum().item(), rel=1e-5)
    module.eval()
    assert _elbo_loss(module, x).item() == pytest.approx(-log_joint.sum().item(), rel=1e-5)


def test_gradients_reach_encoder_decoder_codebook_and_prior(digits):
    train, _ = digits
    module = VQVAE.from_dataset(train, **SMALL)
    x = train.x[:32]
    _elbo_loss(module, x).backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name

    # Without the VQ losses the encoder still learns, through the straight-through vectors that the
    # decoder receives, and the codebook learns nothing (the prior sees only the detached indices).
    module.zero_grad(set_to_none=True)
    module.eval()
    _elbo_loss(module, x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.encoder.parameters())
    assert module.quantizer.codebook.grad is None


# -- the prior over codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("num_codes", [2, 3])
def test_code_prior_normalises_and_samples_agree_with_log_prob(num_codes):
    torch.manual_seed(4)
    module = VQVAE(
        (4, 4),
        num_codes=num_codes,
        code_dim=3,
        channels=8,
        downsample=1,
        res_blocks=0,
        prior_channels=8,
        prior_layers=2,
    )
    prior = CodebookPrior(module.index_prior(), module.quantizer)
    assert prior.event_shape == (2, 2, 3)
    grids = torch.tensor(list(itertools.product(range(num_codes), repeat=4))).reshape(-1, 2, 2)
    values = module.quantizer.lookup(grids)  # every grid of codebook vectors
    with torch.no_grad():
        log_p = prior.log_prob(values)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-5)
    assert bool(prior.support.check(values).all())
    assert not bool(prior.support.check(values + 0.01).any())

    draws = prior.sample((4000,))  # (4000, 2, 2, 3)
    assert bool(prior.support.check(draws).all())
    index = (module.quantizer.nearest(draws).reshape(-1, 4) * num_codes ** torch.arange(3, -1, -1)).sum(1)
    freq = torch.bincount(index, minlength=len(grids)).double() / 4000
    probs = log_p.exp().double()
    assert torch.all((freq - probs).abs() <= 5 * (probs * (1 - probs) / 4000).sqrt() + 1e-3)


# -- training, sampling and evaluation on digits ----------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(digits):
    train, valid = digits
    pyro.set_rng_seed(0)
    module = VQVAE.from_dataset(train, **SMALL)
    before = {
        "error": (module.reconstruct(valid.x) - valid.x).abs().mean().item(),
        "usage": module.codebook_usage(valid.x),
    }
    result = pplgen.fit(
        module.model,
        train.x,
        module.guide,
        epochs=6,
        batch_size=64,
        lr=3e-3,
        valid=valid.x,
        seed=0,
        progress=False,
        callbacks=[lambda row: row.update(module.codebook_usage(valid.x))],
    )
    return module, result, before


def test_fit_lowers_validation_loss_and_reconstruction_error(fitted, digits):
    module, result, before = fitted
    _, valid = digits
    history = result.history
    assert result.family == "latent"
    assert history[-1]["val_loss"] < history[0]["val_loss"] < 64 * math.log(2) + 16 * math.log(16)
    error = (module.reconstruct(valid.x) - valid.x).abs().mean().item()
    assert error < 0.2 < before["error"]  # about 0.12; without the VQ losses about 0.26
    assert len(pyro.get_param_store()) == 0  # the parameters stay in the module


def test_codebook_usage_is_reported_and_several_codes_are_used(fitted):
    _, result, before = fitted
    last = result.history[-1]
    assert last["codes_used"] > 1 and 1.0 < last["perplexity"] <= last["codes_used"]
    assert last["perplexity"] > before["usage"]["perplexity"]


def test_samples_are_binary_images_decoded_from_prior_codes(fitted):
    module, result, _ = fitted
    samples = pplgen.sample(result, 12)
    assert samples.shape == (12, 64)
    assert bool(((samples == 0) | (samples == 1)).all())
    trace = poutine.trace(poutine.uncondition(module.model)).get_trace(torch.zeros(12, 64))
    assert bool(trace.nodes["codes"]["fn"].support.check(trace.nodes["codes"]["value"]).all())


def test_log_likelihood_is_the_joint_of_the_data_and_its_codes(fitted, digits):
    module, result, _ = fitted
    _, valid = digits
    ll = pplgen.log_likelihood(result, valid.x, num_samples=4)
    assert ll.shape == (len(valid.x),) and bool((ll < 0).all())
    with torch.no_grad():
        module.eval()
        q = module.quantize(valid.x)
        prior = CodebookPrior(module.index_prior(), module.quantizer)
        joint = module.observation(q.quantized).log_prob(valid.x) + prior.log_prob(q.quantized)
        module.train()
    assert torch.allclose(ll, joint, atol=1e-4)  # a deterministic guide: every sample agrees
    assert -ll.mean().item() == pytest.approx(result.history[-1]["val_loss"], rel=1e-4)


def test_second_stage_refits_only_the_prior(fitted, digits):
    module, _, _ = fitted
    train, valid = digits
    codes, codes_valid = module.encode(train.x), module.encode(valid.x)
    assert codes.shape == (len(train.x), 4, 4) and codes.dtype == torch.int64
    frozen = {k: v.clone() for k, v in module.state_dict().items() if not k.startswith("prior.")}
    result = pplgen.fit(
        module.prior_model, codes, epochs=3, batch_size=64, lr=3e-3, valid=codes_valid, seed=0, progress=False
    )
    assert result.family == "exact"
    assert result.history[-1]["val_nll"] < result.history[0]["val_nll"] < 16 * math.log(16)
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in frozen.items())


# -- other data, configuration, bad input -----------------------------------------------------------------
def test_discrete_levels_use_a_categorical_likelihood():
    train = load("digits", "train", variant="levels")
    module = VQVAE.from_dataset(train, **SMALL)
    x = train.x[:8]
    assert torch.isfinite(_elbo_loss(module, x))
    samples = pplgen.sample(module.model, 5, x)
    assert samples.shape == (5, 64) and samples.dtype == torch.int64
    assert bool(((samples >= 0) & (samples <= 16)).all())
    assert module.reconstruct(x).shape == (8, 64)


def test_config_rebuilds_and_mnist_gets_a_7x7_grid():
    mnist = Dataset(
        "binarized_mnist", "train", "binary", torch.zeros(2, 784), image_shape=(28, 28), num_levels=2
    )
    module = VQVAE.from_dataset(mnist, num_codes=8, channels=8, prior_channels=8, prior_layers=2)
    assert module.code_shape == (7, 7) and module.encode(mnist.x).shape == (2, 7, 7)
    copy = VQVAE(**module.config)
    assert {k: v.shape for k, v in copy.state_dict().items()} == {
        k: v.shape for k, v in module.state_dict().items()
    }
    ema = VQVAE((8, 8), downsample=1, ema_decay=0.99, **SMALL)
    assert VQVAE(**ema.config).quantizer.ema_decay == 0.99


def test_bad_input_raises_data_errors(digits):
    train, _ = digits
    module = VQVAE.from_dataset(train, **SMALL)
    with pytest.raises(DataError, match=r"expected images of shape \(N, 64\).*got \(4, 63\)"):
        module.model(torch.zeros(4, 63))
    with pytest.raises(DataError, match=r"binary pixels.*got 1 values outside, e.g. 0.5"):
        module.guide(torch.zeros(4, 64).index_fill_(1, torch.tensor([3]), 0.5)[:1])
    with pytest.raises(DataError, match="binary pixels"):
        pplgen.fit(module.model, torch.full((10, 64), 2.0), module.guide, epochs=1)
    with pytest.raises(DataError, match=r"'ring8' has image_shape None \(expected \(H, W\)"):
        VQVAE.from_dataset(load("ring8", "train", num_points=10))
    with pytest.raises(DataError, match=r"binary or discrete pixels, but 'faces' is 'continuous'"):
        VQVAE.from_dataset(Dataset("faces", "train", "continuous", torch.zeros(2, 64), image_shape=(8, 8)))
    with pytest.raises(DataError, match=r"expected vectors of shape \(\.\.\., 8\), got \(2, 3\)"):
        module.quantizer(torch.zeros(2, 3))
    prior = CodebookPrior(module.index_prior(), module.quantizer)
    with pytest.raises(DataError, match=r"event shape \(4, 4, 8\)"):
        prior.log_prob(torch.zeros(2, 4, 4))
    with pytest.raises(DataError, match=r"int64 code indices 0 \.\. 15"):
        module.prior_model(torch.full((2, 16), 16))
    with pytest.raises(ModelError, match=r"divisible by 2\^downsample = 4"):
        VQVAE((8, 6), downsample=2)
