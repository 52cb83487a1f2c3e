"""Bad pixels at image sites, pplgen errors through Pyro, chains joined by ``sample``, shared image checks."""

import re

import matplotlib.image
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import pplgen
from pplgen.data import load
from pplgen.data.dataset import Dataset
from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.errors import DataError, ModelError, program_errors
from pplgen.evaluate.sampling import sample
from pplgen.infer.checks import check_observations
from pplgen.models.dmm import DMM
from pplgen.models.draw import DRAW
from pplgen.models.images import check_images, image_batch, image_settings, pixels_outside
from pplgen.models.pixelcnn import PixelCNNModel
from pplgen.models.pixelvae import PixelVAE
from pplgen.models.vqvae import VQVAE
from pplgen.nn.pixelcnn import PixelCNNNet
from pplgen.runs import write_samples

NET = PixelCNNNet((8, 8), channels=4, layers=1, first_kernel_size=3)
LEVELS_NET = PixelCNNNet((2, 3), num_levels=3, channels=4, layers=1, first_kernel_size=3)


def pixelcnn_program(x):
    """A user's program: the PixelCNN distribution at a site, with no check of its own."""
    pyro.module("net", NET)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", PixelCNN(NET), obs=x.reshape(-1, 8, 8))


def bad_digits(value: float = 2.0) -> torch.Tensor:
    x = load("digits", "train").x[:40].clone()
    x[3, 5] = value  # data point 3, image row 0, column 5
    return x


def _program_of(fn, value):
    def program():
        with pyro.plate("data", value.shape[0]):
            pyro.sample("x", fn, obs=value)

    return program


# -- 1. observations outside the support of a distribution over several event dimensions ---------------
def test_fit_names_the_site_support_and_pixel_of_a_bad_value_at_an_image_site():
    with pytest.raises(DataError) as info:
        pplgen.fit(pixelcnn_program, bad_digits(), epochs=1, batch_size=20, seed=0, progress=False)
    message = str(info.value)
    assert message.startswith("site 'x' (PixelCNN) expects values in its support 0 or 1 (Boolean())")
    assert "but 1 observed values lie outside it, e.g. 2 at index (" in message
    # fit shuffles the data points, but the pixel within the image is where the 2 was put
    index = re.search(r"at index \((\d+), (\d+), (\d+)\)", message).groups()
    assert (int(index[1]), int(index[2])) == (0, 5)
    assert re.search(r"of the observed value of shape \(\d+, 8, 8\)", message)


def test_every_value_outside_is_counted_and_the_first_is_located():
    value = torch.zeros(3, 4, 5)
    value[1, 2, 3], value[2, 0, 0] = 0.5, 7.0
    program = _program_of(dist.Bernoulli(probs=torch.full((4, 5), 0.5)).to_event(2), value)
    with pytest.raises(
        DataError, match=r"\(Bernoulli\) .* 2 observed values lie outside it, e\.g\. 0\.5 at "
    ):
        check_observations(lambda x: program(), (value,))
    with pytest.raises(DataError, match=r"at index \(1, 2, 3\) of the observed value of shape \(3, 4, 5\)"):
        check_observations(lambda x: program(), (value,))


def test_levels_and_transformed_supports_are_named():
    levels = torch.tensor([[[0, 1, 2], [2, 3, 0]]])
    program = _program_of(PixelCNN(LEVELS_NET), levels)
    with pytest.raises(DataError, match=r"support integers 0 \.\. 2 .* e\.g\. 3 at index \(0, 1, 1\)"):
        check_observations(lambda x: program(), (levels,))
    # a LogNormal's base is a Normal on all the reals: the support checked must be its own
    positive = torch.tensor([[1.0, -2.0]])
    program = _program_of(dist.LogNormal(torch.zeros(2), 1.0).to_event(1), positive)
    with pytest.raises(DataError, match=r"\(LogNormal\) .* 1 observed values .* e\.g\. -2 at index \(0, 1\)"):
        check_observations(lambda x: program(), (positive,))


def test_a_value_outside_a_vector_support_is_shown_whole():
    simplex = torch.tensor([[0.5, 0.5], [0.7, 0.7]])
    program = _program_of(dist.Dirichlet(torch.ones(2)), simplex)
    with pytest.raises(
        DataError, match=r"\(Dirichlet\) .* 1 observed values .* e\.g\. \[0\.7, 0\.7\] at index \(1,\)"
    ):
        check_observations(lambda x: program(), (simplex,))


def test_values_inside_the_support_pass():
    x = load("digits", "train").x[:10]
    check_observations(pixelcnn_program, (x,))


# -- 2. a pplgen error that Pyro wrapped on its way out ------------------------------------------------------
def test_log_likelihood_raises_the_distributions_data_error_not_a_model_error():
    with pytest.raises(DataError, match=r"^PixelCNN: expected 0 or 1, got 1 outside, e\.g\. 2$") as info:
        pplgen.log_likelihood(pixelcnn_program, bad_digits())
    assert not isinstance(info.value, ModelError)


def test_program_errors_finds_a_pplgen_error_as_cause_or_context():
    original = DataError("site 'x': expected 0 or 1")
    for link in ("cause", "context"):
        with pytest.raises(DataError) as info, program_errors(pixelcnn_program):
            try:
                raise original
            except DataError as exc:
                if link == "cause":
                    raise ValueError("Error while computing log_prob at site 'x'") from exc
                raise ValueError("Error while computing log_prob at site 'x'")  # noqa: B904
        assert info.value is original


def test_program_errors_still_wraps_other_errors_and_respects_a_hidden_context():
    with (
        pytest.raises(ModelError, match=r"'.*pixelcnn_program' raised KeyError"),
        program_errors(pixelcnn_program),
    ):
        raise KeyError("layer")
    with pytest.raises(ModelError, match="raised ValueError: replaced"), program_errors(pixelcnn_program):
        try:
            raise DataError("hidden on purpose")
        except DataError:
            raise ValueError("replaced") from None


# -- 3. the steps of one observed chain come back as one tensor -------------------------------------------
def small_dmm():
    return DMM.from_dataset(load("digits", "train"), z_dim=3, transition_dim=8, emission_dim=8, rnn_dim=8)


@pytest.mark.parametrize("mean", [False, True])
def test_sample_stacks_a_chain_of_observed_steps_after_the_sample_dimension(mean):
    module = small_dmm()
    template = torch.zeros(5, 64)
    torch.manual_seed(3)
    joined = sample(module.model, 5, template, mean=mean, device="cpu")
    torch.manual_seed(3)
    trace = poutine.trace(poutine.uncondition(module.model)).get_trace(template)
    steps = [
        trace.nodes[f"x_{t}"]["fn"].mean if mean else trace.nodes[f"x_{t}"]["value"] for t in range(1, 9)
    ]
    assert joined.shape == (5, 8, 8)  # (samples, steps, x_dim)
    for t, step in enumerate(steps):
        assert torch.equal(joined[:, t], step)
    assert torch.equal(joined.flatten(1), module.as_data({f"x_{t + 1}": s for t, s in enumerate(steps)}))


def chain_and_label(x, y):
    with pyro.plate("data", x.shape[0]):
        for t in range(3):
            pyro.sample(f"x_{t}", dist.Normal(torch.full((2,), float(t)), 1.0).to_event(1), obs=x[:, t])
        pyro.sample("y", dist.Bernoulli(0.25), obs=y)


def test_a_chain_beside_other_observed_sites_is_one_entry_of_the_dict():
    means = sample(chain_and_label, 4, (torch.zeros(1, 3, 2), torch.zeros(1)), mean=True, device="cpu")
    assert set(means) == {"x_t", "y"}
    assert means["x_t"].shape == (4, 3, 2)
    assert torch.equal(means["x_t"], torch.arange(3.0).reshape(1, 3, 1).expand(4, 3, 2))
    assert torch.equal(means["y"], torch.full((4,), 0.25))


def ragged_chain(x):
    with pyro.plate("data", x.shape[0]):
        for t, size in enumerate((2, 3, 2)):
            pyro.sample(f"x_{t}", dist.Normal(torch.zeros(size), 1.0).to_event(1), obs=x[:, :size])


def test_a_chain_whose_steps_differ_in_shape_is_left_apart():
    assert pplgen.inspect(ragged_chain, torch.zeros(1, 3)).graph["chains"] == {"x_t": ["x_0", "x_1", "x_2"]}
    means = sample(ragged_chain, 2, torch.zeros(1, 3), mean=True, device="cpu")
    assert {name: tuple(value.shape) for name, value in means.items()} == {
        "x_0": (2, 2),
        "x_1": (2, 3),
        "x_2": (2, 2),
    }


def test_a_single_observed_site_is_returned_as_before():
    drawn = sample(pixelcnn_program, 3, torch.zeros(1, 64), device="cpu")
    assert drawn.shape == (3, 8, 8) and set(drawn.unique().tolist()) <= {0.0, 1.0}


def test_joined_steps_are_drawn_as_the_rows_of_each_image(tmp_path):
    digits = load("digits", "train")
    rows = digits.x[:6].reshape(6, 8, 8)  # what a DMM reading rows as steps gives: (n, T, x_dim)
    stacked = write_samples(rows, digits, tmp_path / "stacked")
    flat = write_samples(digits.x[:6], digits, tmp_path / "flat")
    assert stacked.suffix == ".png"
    assert (matplotlib.image.imread(stacked) == matplotlib.image.imread(flat)).all()


def test_write_samples_refuses_several_sites_and_the_wrong_number_of_pixels(tmp_path):
    digits = load("digits", "train")
    with pytest.raises(DataError, match=r"one observed site or chain, got a dict of 2 sites \('x_t', 'y'\)"):
        write_samples({"x_t": torch.zeros(2, 64), "y": torch.zeros(2)}, digits, tmp_path / "s")
    with pytest.raises(DataError, match=r"expected samples of 64 pixels .* got samples of shape \(2, 7, 8\)"):
        write_samples(torch.zeros(2, 7, 8), digits, tmp_path / "s")


# -- 4. one set of image checks for the image models ------------------------------------------------------
def test_image_settings_reads_shape_and_levels_or_says_what_is_missing():
    assert image_settings(load("digits", "train"), "M") == {"image_shape": (8, 8), "num_levels": 2}
    ring = load("ring8", "train", num_points=10)
    with pytest.raises(
        DataError, match=r"^M models images, but data set 'ring8' has no image_shape \(H, W\)"
    ):
        image_settings(ring, "M")
    flat = Dataset("strip", "train", "binary", torch.zeros(2, 8), image_shape=(8,))
    with pytest.raises(DataError, match=r"'strip' has image_shape \(8,\) \(expected \(H, W\)"):
        image_settings(flat, "M")
    levels = load("digits", "train", variant="levels")
    with pytest.raises(DataError, match="^M models binary images, but 'digits' is 'discrete'$"):
        image_settings(levels, "M", kinds=("binary",))


def test_check_images_shapes_and_support():
    x = torch.randint(0, 3, (4, 6))
    assert torch.equal(check_images(x, (2, 3), 3, "M"), x.reshape(4, 2, 3))
    assert torch.equal(check_images(x.reshape(4, 2, 3), (2, 3), 3, "M"), x.reshape(4, 2, 3))
    with pytest.raises(DataError, match=r"got shape \(4, 3, 2\)$"):  # six pixels, but not 2 x 3
        check_images(x.reshape(4, 3, 2), (2, 3), 3, "M")
    with pytest.raises(DataError, match=r"2 x 3 = 6 pixels per data point, got \(4, 7\) has 7$"):
        image_batch(torch.zeros(4, 7), (2, 3), "M")
    with pytest.raises(DataError, match="got list"):
        image_batch([[0] * 6], (2, 3), "M")
    x[2, 4] = 3
    expected = (
        r"^M: expected pixels integers 0 \.\. 2, got 1 outside, e\.g\. 3 in data point 2 at pixel \(1, 1\)$"
    )
    with pytest.raises(DataError, match=expected):
        check_images(x, (2, 3), 3, "M")
    halves = torch.tensor([0.0, 1.0, 0.5, -1.0, 2.0, 1.0])
    assert pixels_outside(halves, 2).tolist() == [False, False, True, True, True, False]


def test_the_image_models_refuse_bad_pixels_with_their_own_name():
    digits = load("digits", "train")
    x = bad_digits()[:8]
    models = {
        "PixelCNN": PixelCNNModel.from_dataset(digits, channels=4, layers=1),
        "PixelVAE": PixelVAE.from_dataset(digits, layers=1),
        "DRAW": DRAW.from_dataset(digits, steps=2, hidden=8),
    }
    for name, module in models.items():
        expected = (
            rf"^{name}: expected pixels 0 or 1, got 1 outside, e\.g\. 2 in data point 3 at pixel \(0, 5\)$"
        )
        with pytest.raises(DataError, match=expected):
            module.model(x)
    vq = VQVAE.from_dataset(digits, num_codes=4, code_dim=2, channels=4, prior_channels=4, prior_layers=1)
    with pytest.raises(
        DataError, match=r"VQVAE: expected binary pixels \(0 or 1\), got 1 values outside, e\.g\. 2"
    ):
        vq.model(x)
    levels = load("digits", "train", variant="levels")
    assert PixelCNNModel.from_dataset(levels, channels=4, layers=1).config["num_levels"] == 17
    with pytest.raises(DataError, match="DRAW models binary images, but 'digits' is 'discrete'"):
        DRAW.from_dataset(levels)
