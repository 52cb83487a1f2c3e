"""Anomaly scores against closed forms, AUROC against its definition, the log-mel FSDD features and the
linear probe.

Probabilistic PCA, x = W z + mu + sigma eps with z ~ N(0, I), has the marginal N(mu, W W^T + sigma^2 I)
and the posterior N(M^-1 W^T (x - mu), sigma^2 M^-1), M = W^T W + sigma^2 I (Tipping & Bishop 1999): with
the exact posterior as proposal every importance weight equals p(x).
"""

from __future__ import annotations

import dataclasses
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from sklearn.metrics import roc_auc_score

import pplgen
from pplgen.data import load
from pplgen.data.files import log_mel, mel_filterbank
from pplgen.errors import DataError, ImplicitLikelihoodError, ModelError
from pplgen.evaluate import anomaly_scores, auroc, linear_probe
from pplgen.infer import AdversarialSettings
from pplgen.models import ALI, GAN, VAE, NADEModel
from tests.conftest import needs_data_file


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- AUROC ------------------------------------------------------------------------------------------


def test_auroc_of_separated_reversed_and_tied_sets():
    assert auroc([0.0, 1.0, 2.0], [3.0, 4.0]) == 1.0
    assert auroc([3.0, 4.0], [0.0, 1.0, 2.0]) == 0.0
    assert auroc(torch.ones(5), torch.ones(7)) == 0.5


def test_auroc_is_the_mann_whitney_count_with_ties_half():
    gen = torch.Generator().manual_seed(0)
    normal, anomalous = torch.randint(0, 6, (40,), generator=gen), torch.randint(2, 8, (30,), generator=gen)
    greater = (anomalous[None, :] > normal[:, None]).double().sum()
    ties = (anomalous[None, :] == normal[:, None]).double().sum()
    expected = float((greater + 0.5 * ties) / (40 * 30))
    assert auroc(normal, anomalous) == pytest.approx(expected, abs=1e-12)
    labels = [0] * 40 + [1] * 30
    assert expected == pytest.approx(roc_auc_score(labels, torch.cat([normal, anomalous])), abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.5])
def test_auroc_of_two_gaussians_is_phi_of_the_shift_over_root_two(shift):
    # a ~ N(shift, 1), b ~ N(0, 1): P(a > b) = P(N(shift, 2) > 0) = Phi(shift / sqrt 2)
    gen = torch.Generator().manual_seed(1)
    n = 4000
    normal, anomalous = torch.randn(n, generator=gen), shift + torch.randn(n, generator=gen)
    expected = 0.5 * (1 + math.erf(shift / 2))  # Phi(shift / sqrt 2) = (1 + erf(shift / 2)) / 2
    # the standard error of an AUROC near 0.5 with n = m is about sqrt((2n + 1) / (12 n^2)) = 0.0065
    assert auroc(normal, anomalous) == pytest.approx(expected, abs=0.025)


@pytest.mark.parametrize(
    "normal, anomalous, message",
    [
        ([], [1.0], "non-empty"),
        ([[1.0, 2.0]], [1.0], "non-empty vector"),
        ([1.0, float("nan")], [1.0], "NaN"),
        (["a"], [1.0], "numbers"),
    ],
)
def test_auroc_refuses_bad_scores(normal, anomalous, message):
    with pytest.raises(DataError, match=message):
        auroc(normal, anomalous)


# -- densities --------------------------------------------------------------------------------------


def gaussian_program(mu: torch.Tensor, sigma: float):
    def model(x):
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, sigma).to_event(1), obs=x)

    return model


def test_an_exact_programs_score_is_its_negative_log_density_in_nats_and_bits():
    mu, sigma = torch.tensor([0.5, -1.0, 2.0]), 0.7
    x = torch.randn(20, 3)
    scores = anomaly_scores(gaussian_program(mu, sigma), x, device="cpu")
    exact = -dist.Normal(mu, sigma).log_prob(x).sum(-1)
    assert scores.estimator == "exact" and scores.density and len(scores) == 20
    assert torch.allclose(scores.nats, exact, atol=1e-5) and torch.equal(scores.scores, scores.nats)
    assert torch.allclose(scores.bits_per_dim, exact / (3 * math.log(2)), atol=1e-6)


def test_a_fitted_exact_models_score_is_minus_log_likelihood(digits):
    x = digits[0].x[:100]
    nade = NADEModel(64, hidden=8)
    result = pplgen.fit(nade.model, x, epochs=1, valid_fraction=0, seed=0, progress=False)
    scores = anomaly_scores(result, x)
    assert torch.allclose(scores.nats, -pplgen.log_likelihood(result, x), atol=1e-5)
    assert torch.allclose(scores.bits_per_dim, scores.nats / (64 * math.log(2)))


D, K_LATENT, SIGMA = 4, 2, 0.5


@pytest.fixture(scope="module")
def ppca():
    gen = torch.Generator().manual_seed(0)
    w, mu = torch.randn(D, K_LATENT, generator=gen), torch.randn(D, generator=gen)
    x = torch.randn(50, K_LATENT, generator=gen) @ w.T + mu + SIGMA * torch.randn(50, D, generator=gen)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(K_LATENT), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ w.T + mu, SIGMA).to_event(1), obs=x)

    m = w.T @ w + SIGMA**2 * torch.eye(K_LATENT)
    gain, scale_tril = torch.linalg.solve(m, w.T), torch.linalg.cholesky(SIGMA**2 * torch.linalg.inv(m))

    def posterior(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.MultivariateNormal((x - mu) @ gain.T, scale_tril=scale_tril))

    def prior_guide(x):  # a poor proposal: the estimate is then a noisy lower bound
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(torch.zeros(len(x), K_LATENT), 1.0).to_event(1))

    exact = -dist.MultivariateNormal(mu, w @ w.T + SIGMA**2 * torch.eye(D)).log_prob(x)
    return {"model": model, "posterior": posterior, "prior": prior_guide, "x": x, "nats": exact}


def test_a_latent_models_importance_sampled_score_is_the_ppca_marginal(ppca):
    scores = anomaly_scores(ppca["model"], ppca["x"], ppca["posterior"], num_samples=8, device="cpu")
    assert scores.estimator == "importance-sampled, K=8"
    # with the exact posterior as proposal each weight is p(x): no Monte Carlo error at all
    assert torch.allclose(scores.nats, ppca["nats"], atol=1e-4)
    pyro.set_rng_seed(0)
    rough = anomaly_scores(ppca["model"], ppca["x"], ppca["prior"], num_samples=2000, device="cpu")
    gap = float((rough.nats - ppca["nats"]).mean())  # the prior as proposal: K = 2,000 draws bring it near
    assert abs(gap) < 0.05, gap


# -- critics ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ring():
    return load("ring8", "train").x[:256]


def fit_gan(ring, pack: int):
    gan = GAN(2, z_dim=2, hidden=16)
    settings = AdversarialSettings(pack=pack)
    result = pplgen.fit(
        gan.model,
        ring,
        epochs=1,
        batch_size=64,
        valid_fraction=0,
        seed=0,
        adversarial=settings,
        progress=False,
    )
    return result


@pytest.mark.parametrize("pack", [1, 2])
def test_a_gans_score_is_minus_its_critics_logit(ring, pack):
    result = fit_gan(ring, pack)
    scores = anomaly_scores(result, ring[:10])
    with torch.no_grad():
        packed = ring[:10].repeat_interleave(pack, 0).reshape(10, 2 * pack)  # each point with its copies
        expected = -result.discriminator(packed).squeeze(-1)
    assert torch.allclose(scores.scores, expected, atol=1e-5)
    assert (
        not scores.density and scores.estimator.startswith("critic") and "not a density" in scores.estimator
    )
    assert ("copies of itself" in scores.estimator) == (pack > 1)
    with pytest.raises(ImplicitLikelihoodError, match="not a density"):
        scores.bits_per_dim  # noqa: B018


def test_an_ali_score_averages_the_joint_critic_over_encoder_draws(ring):
    ali = ALI(2, z_dim=2, hidden=16)
    result = pplgen.fit(ali.model, ring, ali.guide, epochs=1, batch_size=64, valid_fraction=0, seed=0)
    scores = anomaly_scores(result, ring[:10], num_samples=200)
    loc, scale = ali.encode(ring[:10])
    with torch.no_grad():
        z = loc + scale * torch.randn(200, *loc.shape)  # (200, 10, 2)
        pairs = torch.cat([ring[:10].expand(200, 10, 2), z], dim=-1).reshape(-1, 4)
        expected = -result.discriminator(pairs).reshape(200, 10).mean(0)
    assert "200 encoder draws" in scores.estimator
    assert torch.allclose(scores.scores, expected, atol=0.05)


def test_a_fit_without_its_critic_and_an_implicit_program_are_refused(ring):
    result = fit_gan(ring, 1)
    with pytest.raises(ModelError, match="no trained critic"):
        anomaly_scores(dataclasses.replace(result, discriminator=None), ring)
    with pytest.raises(ModelError, match="pass the FitResult"):
        anomaly_scores(result.model, ring)


# -- bad input --------------------------------------------------------------------------------------


def test_bad_input_is_named(digits):
    x = digits[0].x[:50]
    vae = VAE(64, z_dim=2, hidden=8)
    result = pplgen.fit(vae.model, x, vae.guide, epochs=1, valid_fraction=0, seed=0, progress=False)
    with pytest.raises(DataError, match=r"per-point shape\(s\) \[\(64,\)\].*\[\(63,\)\]"):
        anomaly_scores(result, x[:, :63])
    with pytest.raises(DataError, match="NaN"):
        anomaly_scores(result, torch.where(torch.rand(50, 64) < 0.01, torch.nan, x))
    with pytest.raises(ModelError, match="the module VAE, which is not itself a program"):
        anomaly_scores(vae, x)
    with pytest.raises(ModelError, match="expected a FitResult .* got str"):
        anomaly_scores("vae", x)


# -- log-mel features of spoken digits --------------------------------------------------------------


def test_mel_filters_peak_at_their_centres_and_a_tone_lights_the_band_centred_on_it():
    bank = mel_filterbank(129, 16, 8000)  # (mels, frequencies 0, 31.25, ..., 4000 Hz)
    assert bank.shape == (16, 129) and (bank >= 0).all() and (bank.max(1).values > 0.8).all()
    centres = torch.linspace(0, 4000, 129)[bank.argmax(1)]
    tone = torch.sin(2 * math.pi * 1000.0 * torch.arange(4000) / 8000)
    assert int(log_mel(tone, 8000, 16).mean(1).argmax()) == int((centres - 1000).abs().argmin())


@needs_data_file("fsdd.npz")
def test_fsdd_logmel_features_are_finite_standardised_vectors():
    train, test = load("fsdd", "train", features="logmel"), load("fsdd", "test", features="logmel")
    assert (
        train.kind == test.kind == "continuous"
        and train.x.shape == (2400, 128)
        and test.x.shape == (300, 128)
    )
    assert torch.isfinite(test.x).all() and torch.equal(test.y, load("fsdd", "test").y)
    assert torch.allclose(train.x.mean(0), torch.zeros(128), atol=1e-4)
    assert torch.allclose(train.x.std(0), torch.ones(128), atol=1e-3)
    assert train.meta["features"]["feature_shape"] == (8, 16)
    small = load("fsdd", "test", features="logmel", frames=4, mels=10)
    assert small.x.shape == (300, 40)
    with pytest.raises(DataError, match="features must be None"):
        load("fsdd", "test", features="mfcc")
    with pytest.raises(DataError, match="pass features='logmel'"):
        load("fsdd", "test", mels=8)


# -- linear probes ----------------------------------------------------------------------------------


def test_a_linear_probe_reads_a_linear_label_and_not_a_random_one():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(600, 5, generator=gen)
    labels = (codes[:, 0] + codes[:, 1] > 0).long()
    assert linear_probe(codes[:400], labels[:400], codes[400:], labels[400:]) > 0.95
    noise = torch.randint(0, 3, (600,), generator=gen)
    assert linear_probe(codes[:400], noise[:400], codes[400:], noise[400:]) < 0.5


@pytest.mark.parametrize(
    "train, labels, test, message",
    [
        (torch.zeros(4), torch.zeros(4), torch.zeros(2, 1), r"\(N, D\)"),
        (torch.zeros(4, 2), torch.zeros(3), torch.zeros(2, 2), "one per code"),
        (torch.zeros(4, 2), torch.arange(4), torch.zeros(2, 3), "same width"),
        (torch.zeros(4, 2), torch.zeros(4), torch.zeros(2, 2), "two classes"),
        (torch.full((4, 2), torch.nan), torch.arange(4), torch.zeros(2, 2), "NaN"),
    ],
)
def test_a_linear_probe_refuses_bad_codes(train, labels, test, message):
    with pytest.raises(DataError, match=message):
        linear_probe(train, labels, test, torch.zeros(len(test)))


def test_the_anomaly_command_writes_one_score_per_point(tmp_path, capsys):
    import csv

    import numpy as np

    from pplgen.cli import main

    run_dir = tmp_path / "nade"
    assert (
        main(["fit", "nade", "--data", "digits", "--set", "hidden=8", "--epochs", "1", "--out", str(run_dir)])
        == 0
    )
    assert main(["anomaly", str(run_dir), "--limit", "20"]) == 0
    assert "points scored by exact nats" in capsys.readouterr().out.replace(" (-log p)", "")
    with (run_dir / "anomaly-test.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and float(rows[0]["bits_per_dim"]) > 0
    negatives = 1 - load("digits", "test").x[:5].numpy()  # ink and paper swapped: far from the digits
    np.save(tmp_path / "odd.npy", negatives)
    assert (
        main(
            ["anomaly", str(run_dir), "--input", str(tmp_path / "odd.npy"), "--out", str(tmp_path / "o.csv")]
        )
        == 0
    )
    with (tmp_path / "o.csv").open() as f:
        odd = [float(r["score"]) for r in csv.DictReader(f)]
    assert min(odd) > float(np.median([float(r["score"]) for r in rows]))
    np.save(tmp_path / "wide.npy", np.zeros((3, 65), dtype=np.float32))
    assert main(["anomaly", str(run_dir), "--input", str(tmp_path / "wide.npy")]) == 2
