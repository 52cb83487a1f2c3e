"""The adversarial trainer: its games and penalties against closed forms, and GANs that recover a
known distribution."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pplgen
from pplgen.errors import ModelError
from pplgen.infer.gan_objectives import (
    AdversarialSettings,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)


class Affine(nn.Module):
    """x = a z + b with z ~ N(0, 1): the generator of a one-dimensional Gaussian N(b, a^2)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(0.0))

    def model(self, x):
        pyro.module("affine", self)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(self.a * z + self.b, event_dim=1), obs=x)


def gaussian_data(n=2000, loc=3.0, scale=0.5, seed=0):
    return loc + scale * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "settings",
    [
        AdversarialSettings(ema=0.99),
        AdversarialSettings(loss="wgan_gp", d_steps=5, gradient_penalty=1.0, ema=0.99),
        AdversarialSettings(loss="hinge", ema=0.99),
        AdversarialSettings(pack=2, ema=0.99),
    ],
    ids=["non_saturating", "wgan_gp", "hinge", "pacgan2"],
)
def test_gan_recovers_the_mean_and_scale_of_a_gaussian(settings):
    """An affine generator of N(3, 0.5^2); the averaged parameters settle where the raw ones oscillate."""
    generator = Affine()
    width = settings.pack
    critic = nn.Sequential(
        nn.Linear(width, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1)
    )
    pplgen.fit(
        generator.model,
        gaussian_data(),
        epochs=40,
        batch_size=100,
        lr=1e-2,
        seed=0,
        valid_fraction=0,
        discriminator=critic,
        adversarial=settings,
    )
    assert generator.b.item() == pytest.approx(3.0, abs=0.15)
    assert abs(generator.a.item()) == pytest.approx(0.5, abs=0.1)  # the sign of a is not identified


def test_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    softplus = torch.nn.functional.softplus
    assert discriminator_loss("non_saturating", real, fake).item() == pytest.approx(
        (softplus(-real).mean() + softplus(fake).mean()).item()
    )
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0.0 + 2.0) / 2 + (1.5 + 0.0) / 2)
    assert discriminator_loss("wgan_gp", real, fake).item() == pytest.approx(fake.mean() - real.mean())
    assert generator_loss("non_saturating", fake).item() == pytest.approx(softplus(-fake).mean().item())
    assert generator_loss("hinge", fake).item() == pytest.approx(-fake.mean().item())


def test_penalties_match_a_linear_critic():
    """For D(x) = w . x the input gradient is w everywhere: GP = (|w| - 1)^2 and R1 = |w|^2 / 2."""
    w = torch.tensor([0.6, 0.8, 1.2])
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    norm = w.norm().item()
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    assert r1_penalty(critic, real).item() == pytest.approx(0.5 * norm**2, rel=1e-5)


def test_packing_feeds_the_critic_several_samples_at_once():
    generator = Affine()
    seen = []

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, x):
            seen.append(tuple(x.shape))
            return self.linear(x)

    pplgen.fit(
        generator.model,
        gaussian_data(200),
        epochs=1,
        batch_size=50,
        seed=0,
        valid_fraction=0,
        discriminator=Critic(),
        adversarial=AdversarialSettings(pack=4),
    )
    assert set(seen) == {(12, 4)}  # 50 samples in packs of 4: 12 packs, the remainder of 2 dropped


def test_a_discriminator_with_the_wrong_output_shape_is_refused():
    with pytest.raises(
        ModelError, match=r"one score per sample, shape \(8,\) or \(8, 1\); it returned shape \(8, 3\)"
    ):
        pplgen.fit(Affine().model, gaussian_data(40), batch_size=8, epochs=1, discriminator=nn.Linear(1, 3))


def test_non_finite_steps_are_skipped_and_persistent_ones_stop_training():
    class Flaky(Affine):
        calls = 0

        def model(self, x):
            Flaky.calls += 1
            pyro.module("affine", self)
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
                broken = Flaky.calls % 3 == 0  # every third run of the program produces NaN
                value = self.a * z + self.b + (float("nan") if broken else 0.0)
                pyro.sample("x", pplgen.Implicit(value, event_dim=1), obs=x)

    generator = Flaky()
    result = pplgen.fit(
        generator.model, gaussian_data(300), batch_size=50, epochs=2, seed=0, valid_fraction=0
    )
    skipped = [row["skipped"] for row in result.history]
    assert all(0 < s < 1 for s in skipped)
    assert torch.isfinite(generator.a) and torch.isfinite(generator.b)

    class Broken(Affine):
        def model(self, x):
            pyro.module("affine", self)
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
                pyro.sample("x", pplgen.Implicit(self.a * z * float("nan"), event_dim=1), obs=x)

    diverged = r"adversarial training diverged: 5 steps in a row.*the discriminator and the generator's loss"
    with pytest.raises(ModelError, match=diverged):
        pplgen.fit(
            Broken().model,
            gaussian_data(400),
            batch_size=50,
            epochs=2,
            adversarial=AdversarialSettings(max_bad_steps=5),
        )


def test_parameter_averaging_ends_with_the_average():
    generator = Affine()
    values = []
    result = pplgen.fit(
        generator.model,
        gaussian_data(400),
        epochs=3,
        batch_size=50,
        lr=1e-2,
        seed=0,
        valid_fraction=0,
        adversarial=AdversarialSettings(ema=0.9),
        callbacks=[lambda row: values.append(generator.b.item())],
    )
    average = result.trainer.average
    key = next(k for k in average if k.endswith("b"))
    assert generator.b.item() == pytest.approx(average[key].item())
    assert generator.b.item() != pytest.approx(values[-1], abs=1e-6)  # not the last raw iterate
    assert result.settings["adversarial"]["ema"] == 0.9


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown adversarial loss 'wgan'"):
        AdversarialSettings(loss="wgan")
    with pytest.raises(ValueError, match="expected pack >= 1"):
        AdversarialSettings(pack=0)
    with pytest.raises(ValueError, match="ema is a decay"):
        AdversarialSettings(ema=1.0)


def test_evaluate_reports_image_metrics_for_an_implicit_model_on_labelled_images(tmp_path):
    from pplgen.cli import main

    run = tmp_path / "gan"
    assert main(["fit", "gan", "--data", "digits", "--epochs", "1", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--json"]) == 0
    from pplgen.runs import load_run

    result, dataset, _ = load_run(run, split="test")
    row = pplgen.evaluate.summary(result, dataset)
    assert {"fd", "precision", "recall", "classifier_accuracy"} <= set(row)
    assert row["fd"] > 0 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1


def test_cli_gan_options_survive_saving_and_loading(tmp_path):
    """A packed critic is wider; the run's saved settings rebuild it when the run is loaded."""
    from pplgen.cli import main
    from pplgen.runs import load_run

    run = tmp_path / "gan"
    args = [
        "fit",
        "gan",
        "--data",
        "ring8",
        "--epochs",
        "1",
        "--pack",
        "2",
        "--ema",
        "0.99",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    result, _, _ = load_run(run, split="test")
    assert result.settings["adversarial"]["pack"] == 2
    assert result.trainer.discriminator(torch.zeros(3, 4)).shape == (3, 1)  # two 2-D samples per score


def test_an_implicit_guide_falls_back_to_the_prior_as_proposal():
    train = pplgen.data.load("digits", "train")
    module = pplgen.models.build("avb", train, hidden=32, z_dim=4)
    result = pplgen.fit(module.model, train.x[:200], module.guide, epochs=1, seed=0)
    values, found = pplgen.evaluate.estimate(result, train.x[:20], num_samples=10)
    assert torch.isfinite(values).all()
    assert found.estimator.endswith("with the prior as proposal (the guide is implicit: it has no log q)")


def test_an_elbo_asked_of_an_implicit_model_explains_why_not():
    with pytest.raises(ModelError, match="no likelihood exists for ELBO to bound: it trains adversarially"):
        pplgen.fit(Affine().model, gaussian_data(40), objective=pplgen.ELBO(), epochs=1)
