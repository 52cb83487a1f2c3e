"""Pictures checked through their artists: panels, labels, titles, legends, points, lines and images."""

import math
import re

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from pplgen import plot
from pplgen.errors import DataError
from pplgen.graph import inspect
from pplgen.render import collapse
from tests.programs import PROGRAMS

RATE = 8000


@pytest.fixture(autouse=True)
def _close_figures():
    torch.manual_seed(0)
    yield
    plt.close("all")


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _sine(frequency: float, seconds: float = 0.5) -> torch.Tensor:
    return torch.sin(2 * math.pi * frequency * torch.arange(int(RATE * seconds)) / RATE)


# --- the contract every picture keeps: a Figure, drawn into ``ax`` when one is given ---------------------

WITH_AX = {
    "training_curves": lambda ax: plot.training_curves([{"epoch": 0, "loss": 1.0}], ax=ax),
    "image_grid": lambda ax: plot.image_grid(torch.rand(4, 9, dtype=torch.float64), (3, 3), ax=ax),
    "scatter": lambda ax: plot.scatter(torch.randn(10, 2, requires_grad=True), ax=ax),
    "waveform": lambda ax: plot.waveform(_sine(440).half(), RATE, ax=ax),
    "spectrogram": lambda ax: plot.spectrogram(_sine(440).double(), RATE, ax=ax),
    "latent_scatter": lambda ax: plot.latent_scatter(torch.randn(20, 3, requires_grad=True), ax=ax),
    "khat": lambda ax: plot.khat(torch.rand(10, dtype=torch.float64), ax=ax),
}
WITHOUT_AX = {
    "reconstructions": lambda: plot.reconstructions(torch.rand(4, 9), torch.rand(4, 9), (3, 3)),
    "latent_traversal": lambda: plot.latent_traversal(torch.rand(2, 3, 9), (3, 3), [-1.0, 0.0, 1.0]),
    "marginals": lambda: plot.marginals({"a": torch.randn(50)}, {"a": torch.randn(60)}),
    "plate_diagram": lambda: plot.plate_diagram(_vae_graph()),
    "trajectories": lambda: plot.trajectories(torch.randn(3, 10, 2), torch.randn(2, 12, 2), ["x", "v"]),
}


def _vae_graph():
    model, args = next(p for p in PROGRAMS if p.name == "vae").build()
    return inspect(model, *args)


def test_every_function_is_exported():
    assert sorted(plot.__all__) == sorted([*WITH_AX, *WITHOUT_AX])


@pytest.mark.parametrize("name", sorted(WITH_AX))
def test_draws_into_the_given_axes(name):
    figure, ax = plt.subplots()
    assert WITH_AX[name](ax) is figure
    assert ax.has_data()


@pytest.mark.parametrize("name", sorted([*WITH_AX, *WITHOUT_AX]))
def test_returns_a_new_figure_without_axes(name):
    figure = WITH_AX[name](None) if name in WITH_AX else WITHOUT_AX[name]()
    assert isinstance(figure, Figure)
    assert figure.axes


# --- curves -------------------------------------------------------------------------------------------


def test_training_curves_plot_float_metrics_with_validation_dashed():
    history = [
        {"epoch": e, "loss": 10.0 / (e + 1), "val_loss": 11.0 / (e + 1), "time_s": 0.1, "active_units": 2}
        for e in range(5)
    ]
    (ax,) = plot.training_curves(history).axes
    assert _legend(ax) == ["loss", "val_loss"]
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--"]
    assert list(ax.lines[0].get_xdata()) == [0, 1, 2, 3, 4]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "nats per data point")


def test_training_curves_plot_the_keys_asked_for():
    history = [{"epoch": e, "loss": 1.0, "kl": 0.5, "time_s": 0.1} for e in range(3)]
    (ax,) = plot.training_curves(history, keys=["kl", "time_s"]).axes
    assert _legend(ax) == ["kl", "time_s"]
    assert ax.get_ylabel() == ""


# --- images -------------------------------------------------------------------------------------------


def test_image_grid_places_each_image_row_by_row():
    images = torch.rand(5, 12)
    (ax,) = plot.image_grid(images, (3, 4), ncols=2).axes
    canvas = torch.as_tensor(ax.images[0].get_array().filled(math.nan))
    assert canvas.shape == (3 * 4 + 1, 2 * 5 + 1)  # 3 rows of 2, 1-pixel gaps around each image
    assert torch.allclose(canvas[1:4, 1:5], images[0].reshape(3, 4))
    assert torch.allclose(canvas[5:8, 6:10], images[3].reshape(3, 4))
    assert canvas[0].isnan().all() and canvas[9:12, 6:10].isnan().all()  # gaps and the empty sixth cell


def test_image_grid_rejects_images_of_another_size():
    with pytest.raises(DataError, match=r"12 pixels .* shape \(5, 10\)"):
        plot.image_grid(torch.rand(5, 10), (3, 4))


def test_reconstructions_show_data_and_recon_side_by_side_in_the_same_order():
    data, recon = torch.rand(6, 4), torch.rand(6, 4)
    figure = plot.reconstructions(data, recon, (2, 2), ncols=3)
    assert [ax.get_title() for ax in figure.axes] == ["data", "reconstruction"]
    left, right = (torch.as_tensor(ax.images[0].get_array().filled(0)) for ax in figure.axes)
    assert left.shape == right.shape == (2 * 3 + 1, 3 * 3 + 1)
    for i in range(6):
        r, c = divmod(i, 3)
        cell = (slice(1 + 3 * r, 3 + 3 * r), slice(1 + 3 * c, 3 + 3 * c))
        assert torch.allclose(left[cell], data[i].reshape(2, 2))
        assert torch.allclose(right[cell], recon[i].reshape(2, 2))


def test_reconstructions_need_one_per_image():
    with pytest.raises(DataError, match="3 data, 4 recon"):
        plot.reconstructions(torch.rand(3, 4), torch.rand(4, 4), (2, 2))


# --- 2-D samples --------------------------------------------------------------------------------------


def test_scatter_shows_samples_and_modes():
    (ax,) = plot.scatter(torch.randn(300, 2), modes=torch.randn(8, 2)).axes
    assert [len(c.get_offsets()) for c in ax.collections] == [300, 8]
    assert _legend(ax) == ["samples", "modes"]
    assert ax.get_aspect() == 1.0


# --- audio --------------------------------------------------------------------------------------------


def test_waveform_of_one_clip_is_one_line_against_seconds():
    clip = _sine(100)
    (ax,) = plot.waveform(clip, RATE).axes
    (line,) = ax.lines
    assert len(line.get_xdata()) == len(clip)
    assert line.get_xdata()[-1] == pytest.approx((len(clip) - 1) / RATE)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (s)", "amplitude")


def test_waveform_of_several_clips_has_one_panel_each_labelled_on_the_outside():
    figure = plot.waveform(torch.stack([_sine(100 * (i + 1)) for i in range(5)]), RATE)
    assert [ax.get_title() for ax in figure.axes] == [f"clip {i + 1}" for i in range(5)]
    assert all(len(ax.lines) == 1 for ax in figure.axes)
    # 2 columns of up to 3 rows: x labelled where no panel lies below, y in the first column
    assert [ax.get_xlabel() for ax in figure.axes] == ["", "", "", "time (s)", "time (s)"]
    assert [ax.get_ylabel() for ax in figure.axes] == ["amplitude", "", "amplitude", "", "amplitude"]


@pytest.mark.parametrize("function", [plot.waveform, plot.spectrogram])
def test_audio_takes_at_most_16_clips_and_one_with_ax(function):
    with pytest.raises(DataError, match=r"1 <= n <= 16, got \(17, 4000\)"):
        function(torch.zeros(17, 4000), RATE)
    with pytest.raises(DataError, match="ax= holds one clip, got 2"):
        function(torch.zeros(2, 4000), RATE, ax=plt.subplots()[1])


def test_spectrogram_shows_a_sine_at_its_frequency_in_db():
    n_fft, hop = 256, 64
    clip = _sine(1000)  # bin 1000 / (8000 / 256) = 32
    figure = plot.spectrogram(clip, RATE, n_fft=n_fft, hop=hop)
    ax, colorbar = figure.axes
    image = torch.as_tensor(ax.images[0].get_array())
    assert image.shape == (n_fft // 2 + 1, 1 + len(clip) // hop)
    assert (image[:, 2:-2].argmax(dim=0) == 32).all()  # the first and last frames see the padding
    assert image.max().item() == pytest.approx(20 * math.log10(0.5), abs=0.5)  # a unit sine: -6 dB
    assert ax.images[0].get_extent() == [0.0, 0.5, 0.0, RATE / 2]
    assert (ax.get_xlabel(), ax.get_ylabel(), colorbar.get_ylabel()) == ("time (s)", "frequency (Hz)", "dB")


def test_spectrogram_of_several_clips_shares_one_colour_scale():
    figure = plot.spectrogram(torch.stack([_sine(500), 0.1 * _sine(2000), _sine(3000)]), RATE)
    *panels, colorbar = figure.axes
    assert [ax.get_title() for ax in panels] == ["clip 1", "clip 2", "clip 3"]
    assert len({ax.images[0].get_clim() for ax in panels}) == 1
    assert colorbar.get_ylabel() == "dB"


def test_spectrogram_needs_a_clip_as_long_as_the_window():
    with pytest.raises(DataError, match="200 samples .* n_fft=256"):
        plot.spectrogram(torch.zeros(200), RATE)


# --- latents ------------------------------------------------------------------------------------------


def test_two_dimensional_codes_are_plotted_as_they_are():
    codes = torch.randn(40, 2)
    (ax,) = plot.latent_scatter(codes).axes
    assert torch.allclose(torch.as_tensor(ax.collections[0].get_offsets()).float(), codes)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1", "z2")


def test_longer_codes_are_projected_on_principal_components_with_their_share_of_variance():
    codes = torch.randn(2000, 5) * torch.tensor([3.0, 0.1, 2.0, 0.5, 1.0])
    (ax,) = plot.latent_scatter(codes).axes
    labels = (ax.get_xlabel(), ax.get_ylabel())
    shares = [
        int(re.fullmatch(rf"PC {i + 1} \((\d+)% of variance\)", label)[1]) for i, label in enumerate(labels)
    ]
    variances = torch.linalg.eigvalsh(torch.cov(codes.T.double())).flip(0)
    assert shares == [round(100 * v) for v in (variances[:2] / variances.sum()).tolist()]
    assert shares[0] > shares[1] > 20
    points = torch.as_tensor(ax.collections[0].get_offsets())
    assert points.shape == (2000, 2)
    assert points.var(0).tolist() == pytest.approx(variances[:2].tolist(), rel=1e-3)


def test_labels_colour_the_points_with_one_legend_entry_per_class():
    labels = torch.tensor([2, 0, 1, 2, 2, 0] * 5)
    (ax,) = plot.latent_scatter(torch.randn(30, 4), labels).axes
    assert _legend(ax) == ["0", "1", "2"]
    assert [len(c.get_offsets()) for c in ax.collections] == [10, 5, 15]
    assert len({tuple(c.get_facecolor()[0]) for c in ax.collections}) == 3


def test_one_dimensional_codes_are_plotted_against_label_or_index():
    codes, labels = torch.randn(12, 1), torch.arange(12) % 3
    (ax,) = plot.latent_scatter(codes, labels.double()).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("label", "z1")
    assert sorted(x for c in ax.collections for x, _ in c.get_offsets()) == sorted(labels.tolist())
    (ax,) = plot.latent_scatter(codes).axes
    assert (ax.get_xlabel(), _points(ax)) == ("index", 12)


@pytest.mark.parametrize(
    ("codes", "labels", "message"),
    [
        (torch.randn(10), None, r"shape \(N, d\), got \(10,\)"),
        (torch.randn(10, 2), torch.arange(9), "10 integer labels"),
        (torch.randn(10, 2), torch.rand(10), "10 integer labels"),
    ],
)
def test_latent_scatter_rejects_bad_codes_and_labels(codes, labels, message):
    with pytest.raises(DataError, match=message):
        plot.latent_scatter(codes, labels)


def test_latent_traversal_labels_rows_with_names_and_columns_with_values():
    images = torch.rand(3, 5, 4 * 6)
    figure = plot.latent_traversal(images, (4, 6), torch.linspace(-2, 2, 5))
    (ax,) = figure.axes
    assert ax.images[0].get_array().shape == (3 * 5 + 1, 5 * 7 + 1)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z1", "z2", "z3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2.00", "-1.00", "0.00", "1.00", "2.00"]
    canvas = torch.as_tensor(ax.images[0].get_array().filled(0))
    assert torch.allclose(canvas[6:10, 15:21], images[1, 2].reshape(4, 6))  # row 1 (z2), column 2
    named = plot.latent_traversal(images, (4, 6), [0.0, 0.25, 0.5, 0.75, 1.0], names=["a", "b", "c"])
    assert [t.get_text() for t in named.axes[0].get_yticklabels()] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("shape", "values", "names", "message"),
    [
        ((3, 4, 24), [0.0, 1.0, 2.0], None, r"C = 3 values .* images \(3, 4, 24\)"),
        ((3, 3, 20), [0.0, 1.0, 2.0], None, "D = 24 pixels"),
        ((12, 24), [0.0, 1.0, 2.0], None, r"shape \(R, C, D\)"),
        ((3, 3, 24), [0.0, 1.0, 2.0], ["a", "b"], "3 rows, 2 names"),
    ],
)
def test_latent_traversal_rejects_mismatched_shapes(shape, values, names, message):
    with pytest.raises(DataError, match=message):
        plot.latent_traversal(torch.rand(shape), (4, 6), values, names)


# --- diagnostics --------------------------------------------------------------------------------------


def test_khat_colours_points_by_band_and_counts_those_above_the_threshold():
    k = torch.cat([torch.full((190,), 0.2), torch.full((7,), 0.6), torch.full((3,), 0.9)])
    (ax,) = plot.khat(k[torch.randperm(200)]).axes
    bands = {c.get_label(): c for c in ax.collections}
    assert list(bands) == ["k\u0302 < 0.50", "0.50 \u2264 k\u0302 \u2264 0.70", "k\u0302 > 0.70"]
    assert [len(c.get_offsets()) for c in bands.values()] == [190, 7, 3]
    colours = [tuple(c.get_facecolor()[0]) for c in bands.values()]
    assert colours == [to_rgba(name) for name in ("tab:blue", "tab:orange", "tab:red")]
    assert all(y > 0.7 for _, y in bands["k\u0302 > 0.70"].get_offsets())
    assert ax.get_title() == "3 of 200 points above 0.70"
    assert [(line.get_ydata()[0], line.get_linestyle()) for line in ax.lines] == [(0.5, "--"), (0.7, "--")]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("data point", "Pareto k\u0302")


@pytest.mark.parametrize(("sample_size", "threshold"), [(100, 0.5), (1000, 1 - 1 / 3), (10**6, 0.7)])
def test_khat_threshold_depends_on_the_sample_size(sample_size, threshold):
    (ax,) = plot.khat(torch.tensor([0.1, 0.55, 0.69, 0.8]), sample_size=sample_size).axes
    assert ax.lines[1].get_ydata()[0] == pytest.approx(threshold)
    above = sum(k > threshold for k in (0.1, 0.55, 0.69, 0.8))
    assert ax.get_title() == f"{above} of 4 points above {threshold:.2f}"


def test_khat_rejects_bad_input():
    with pytest.raises(DataError, match="at least 2 draws"):
        plot.khat(torch.rand(5), sample_size=1)
    with pytest.raises(DataError, match=r"shape \(N,\), got \(5, 2\)"):
        plot.khat(torch.rand(5, 2))


def test_marginals_overlay_both_draws_per_component_on_the_same_bins():
    first = {"mu": torch.randn(400), "w": torch.randn(400, 2, 3)}
    second = {"mu": torch.randn(300) + 1, "w": torch.randn(300, 2, 3)}
    figure = plot.marginals(first, second, labels=("guide", "HMC"))
    titles = ["mu", *(f"w[{i}, {j}]" for i in range(2) for j in range(3))]
    assert [ax.get_title() for ax in figure.axes] == titles
    assert _legend(figure.axes[0]) == ["guide", "HMC"]
    assert figure.get_suptitle() == "guide vs HMC"
    for ax in figure.axes:
        bars = ax.patches
        assert len(bars) == 2 * 30
        assert [b.get_x() for b in bars[:30]] == [b.get_x() for b in bars[30:]]  # the same bins
        for half in (bars[:30], bars[30:]):
            assert sum(b.get_height() * b.get_width() for b in half) == pytest.approx(1.0)  # densities


def test_marginals_show_at_most_max_panels_and_name_the_rest():
    figure = plot.marginals({"z": torch.randn(50, 10)}, {"z": torch.randn(50, 10)}, max_panels=4)
    assert [ax.get_title() for ax in figure.axes] == ["z[0]", "z[1]", "z[2]", "z[3]"]
    assert figure.get_suptitle() == "VI vs NUTS\nnot shown: z[4], z[5], z[6], z[7] \u2026 and 2 more"


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (
            {"a": torch.randn(9), "b": torch.randn(9)},
            {"a": torch.randn(9), "c": torch.randn(9)},
            r"only in VI: \['b'\], only in NUTS: \['c'\]",
        ),
        ({"a": torch.randn(9, 2)}, {"a": torch.randn(9, 3)}, r"\(9, 2\) from VI and \(9, 3\) from NUTS"),
        ({"a": torch.tensor([0.0, math.nan])}, {"a": torch.randn(9)}, "'a' from VI hold NaN"),
        ({}, {}, "nothing to show"),
    ],
)
def test_marginals_reject_mismatched_draws(first, second, message):
    with pytest.raises(DataError, match=message):
        plot.marginals(first, second)


# --- graphs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [False, True])
def test_plate_diagram_is_the_figure_of_the_drawn_graph(params):
    graph = _vae_graph()
    (ax,) = plot.plate_diagram(graph, params=params).axes
    nodes = sorted(p.get_gid()[len("node:") :] for p in ax.patches if (p.get_gid() or "").startswith("node:"))
    assert nodes == sorted(collapse(graph, params=params))
    assert graph.graph["family"] in ax.get_title()
