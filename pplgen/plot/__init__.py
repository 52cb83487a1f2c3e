"""Pictures of a fit (matplotlib), each returned as a :class:`matplotlib.figure.Figure`.

Training curves (``curves``), images and reconstructions (``images``), 2-D samples over the true modes
(``samples2d``), trajectories of a controlled system (``trajectories``), waveforms and spectrograms
(``audio``), latent codes and traversals (``latents``), Pareto k̂ and posterior marginals
(``diagnostics``) and plate diagrams (``graphs``). A function that takes ``ax=`` draws into that Axes and
returns its figure; without it, it makes a figure of its own.
"""

from pplgen.plot.audio import spectrogram, waveform
from pplgen.plot.curves import training_curves
from pplgen.plot.diagnostics import khat, marginals
from pplgen.plot.graphs import plate_diagram
from pplgen.plot.images import image_grid, reconstructions
from pplgen.plot.latents import latent_scatter, latent_traversal
from pplgen.plot.samples2d import scatter
from pplgen.plot.trajectories import trajectories

__all__ = [
    "image_grid",
    "khat",
    "latent_scatter",
    "latent_traversal",
    "marginals",
    "plate_diagram",
    "reconstructions",
    "scatter",
    "spectrogram",
    "training_curves",
    "trajectories",
    "waveform",
]
