"""The GAN zoo (image GAN, WGAN, class-conditional GAN) and the default critic: shapes, packing, the
labels a conditional critic sees, and conditional samples that follow their labels."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import pplgen
from pplgen.data import Dataset
from pplgen.errors import DataError, ModelError
from pplgen.infer.adversarial import default_discriminator, packed_shape
from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.models import GAN, ConditionalGAN
from pplgen.nn import ConvEncoder


def test_packing_stacks_flat_events_side_by_side_and_images_as_channels():
    assert packed_shape((), 3) == (3,)
    assert packed_shape((2,), 4) == (8,)
    assert packed_shape((8, 8), 2) == (2, 8, 8)
    assert packed_shape((3, 8, 8), 2) == (6, 8, 8)


def test_the_default_critic_is_convolutional_for_images_and_sees_the_context():
    image = default_discriminator((8, 8), pack=2, context=10)
    assert isinstance(image.body[0], ConvEncoder) and image.body[0].chw == (2, 8, 8) and image.context == 20
    assert image(torch.zeros(5, 2, 8, 8), torch.zeros(5, 20)).shape == (5, 1)
    flat = default_discriminator((2,), pack=2, context=3, hidden=16)
    assert flat(torch.zeros(5, 4), torch.zeros(5, 6)).shape == (5, 1)
    # the context changes the score: it is not ignored
    x, context = torch.randn(5, 4), torch.eye(6)[:5]
    assert not torch.allclose(flat(x, context), flat(x, torch.zeros(5, 6)))


def test_spectral_normalisation_bounds_every_layer_of_the_default_critic():
    critic = default_discriminator((8, 8), hidden=32, spectral_norm=True)
    layers = [m for m in critic.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    critic.train()
    for _ in range(30):  # power iteration converges on the largest singular value
        critic(torch.randn(4, 1, 8, 8))
    for layer in layers:
        matrix = layer.weight.reshape(layer.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_the_image_gan_simulates_images_and_its_critic_judges_packed_images():
    data = pplgen.data.load("digits", "train")
    gan = pplgen.models.build("gan", data, hidden=32, channels=4, z_dim=4)
    assert gan.image_shape == (8, 8)
    result = pplgen.fit(
        gan.model, data.x[:64], epochs=1, batch_size=32, seed=0, valid_fraction=0, adversarial=gan.adversarial
    )
    trainer = result.trainer
    assert isinstance(trainer.discriminator.body[0], ConvEncoder)
    assert trainer.discriminator.body[0].chw == (2, 8, 8)
    x = torch.arange(4 * 64.0).reshape(4, 8, 8)
    packed = trainer.pack(x)
    assert packed.shape == (2, 2, 8, 8)
    assert torch.equal(packed[1, 0], x[2]) and torch.equal(packed[1, 1], x[3])  # packs keep samples whole
    samples = pplgen.sample(result, 6)
    assert samples.shape == (6, 8, 8) and 0 <= samples.min() and samples.max() <= 1


def two_classes(n: int = 2000, seed: int = 0) -> Dataset:
    """Class 0 (30 %) at N(-2, 0.1²), class 1 (70 %) at N(2, 0.1²)."""
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=gen) < 0.7).long()
    x = (4.0 * y - 2.0 + 0.1 * torch.randn(n, generator=gen)).unsqueeze(1)
    return Dataset(name="two", split="train", kind="continuous", x=x, y=y)


def test_a_conditional_gan_draws_the_class_it_is_asked_for():
    data = two_classes()
    cgan = ConditionalGAN.from_dataset(data, z_dim=2, hidden=32)
    assert cgan.num_classes == 2
    result = pplgen.fit(
        cgan.model,
        (data.x, data.y),
        epochs=30,
        batch_size=100,
        lr=2e-3,
        seed=0,
        valid_fraction=0,
        adversarial=AdversarialSettings(ema=0.99),
    )
    assert result.trainer.discriminator.context == 2  # the one-hot label reaches the critic
    for label, centre in ((0, -2.0), (1, 2.0)):
        labels = torch.full((500,), label)
        drawn = pplgen.sample(result, 500, (torch.zeros(500, 1), labels)).squeeze(1)
        assert drawn.mean().item() == pytest.approx(centre, abs=0.15)
        assert (drawn - centre).abs().lt(0.5).float().mean().item() > 0.95


def test_conditional_gan_labels_are_checked():
    cgan = ConditionalGAN(2, num_classes=3, hidden=8)
    with pytest.raises(DataError, match=r"labels y as integers 0 \.\. 2 of shape \(4,\): call model"):
        cgan.model(torch.zeros(4, 2))
    with pytest.raises(DataError, match=r"got torch.float32 of shape \(4,\)"):
        cgan.model(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(DataError, match=r"got labels 0 \.\. 3"):
        cgan.model(torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ModelError, match="num_classes must be an integer >= 1, got 0"):
        ConditionalGAN(2, num_classes=0)
    with pytest.raises(DataError, match=r"GAN expects data of shape \(N, 2\), got shape \(4, 3\)"):
        GAN(2).model(torch.zeros(4, 3))
    with pytest.raises(DataError, match=r"\(N, 64\) or \(N, 8, 8\), got shape \(4, 7, 7\)"):
        GAN(64, image_shape=(8, 8)).model(torch.zeros(4, 7, 7))


def test_zoo_models_bring_their_game_and_command_line_options_override_it(tmp_path):
    from pplgen.cli import main
    from pplgen.runs import load_run

    run = tmp_path / "wgan"
    common = ["--data", "ring8", "--epochs", "1", "--set", "hidden=16"]
    assert main(["fit", "wgan", *common, "--out", str(run)]) == 0
    settings = load_run(run, split="test")[0].settings["adversarial"]
    assert (settings["loss"], settings["d_steps"], settings["gradient_penalty"]) == ("wgan_gp", 5, 10.0)
    assert main(["fit", "wgan", *common, "--gan-loss", "hinge", "--out", str(run)]) == 0
    settings = load_run(run, split="test")[0].settings["adversarial"]
    assert (settings["loss"], settings["d_steps"], settings["gradient_penalty"]) == ("hinge", 5, 0.0)
    assert main(["fit", "gan", *common, "--gan-loss", "wgan_gp", "--out", str(run)]) == 0
    settings = load_run(run, split="test")[0].settings["adversarial"]
    assert (settings["loss"], settings["pack"], settings["gradient_penalty"]) == ("wgan_gp", 2, 10.0)


def test_evaluating_a_conditional_gan_draws_for_the_test_labels_and_scores_them(tmp_path, capsys):
    from pplgen.cli import main

    run = tmp_path / "cgan"
    settings = ["--set", "hidden=32", "--set", "channels=4", "--set", "z_dim=4"]
    assert main(["fit", "cgan", "--data", "digits", "--epochs", "1", *settings, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["num_samples"] == 359 and 0.0 <= row["label_accuracy"] <= 1.0
