"""Audio: waveforms and log-magnitude spectrograms, one panel per clip."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.errors import DataError
from pplgen.plot._figure import as_cpu, label_outer, panels

__all__ = ["spectrogram", "waveform"]

MAX_CLIPS = 16
DYNAMIC_RANGE_DB = 80.0  # quieter bins than this below the loudest are shown at the floor
CLIPS_PER_COLUMN = 4


def _clips(audio: torch.Tensor, ax: Axes | None) -> torch.Tensor:
    """``audio`` as ``(n, T)`` CPU clips, checking there are at most :data:`MAX_CLIPS` (one with ``ax``)."""
    clips = as_cpu(audio)
    clips = clips[None] if clips.dim() == 1 else clips
    if clips.dim() != 2 or not 1 <= clips.shape[0] <= MAX_CLIPS or clips.shape[1] == 0:
        raise DataError(
            f"expected audio of shape (T,) or (n, T) with 1 <= n <= {MAX_CLIPS}, got {tuple(clips.shape)}"
        )
    if ax is not None and clips.shape[0] != 1:
        raise DataError(f"ax= holds one clip, got {clips.shape[0]}; leave ax out for one panel per clip")
    return clips


def _clip_panels(clips: torch.Tensor, ax: Axes | None, size: tuple[float, float], ylabel: str) -> list[Axes]:
    """``ax``, the Axes of a new figure of ``size`` for one clip, or a grid of titled panels for several;
    the outer ones labelled with time and ``ylabel``."""
    ncols = math.ceil(clips.shape[0] / CLIPS_PER_COLUMN)
    if ax is not None:
        cells = [ax]
    elif clips.shape[0] == 1:
        cells = [plt.figure(figsize=size, layout="constrained").add_subplot()]
    else:
        _, cells = panels(clips.shape[0], ncols, size=(0.7 * size[0], 0.7 * size[1]))
        for i, cell in enumerate(cells):
            cell.set_title(f"clip {i + 1}", fontsize="small")
    label_outer(cells, ncols, "time (s)", ylabel)
    return cells


def waveform(audio: torch.Tensor, sample_rate: float, ax: Axes | None = None) -> Figure:
    """The amplitude of each clip against time.

    Args:
        audio: one clip ``(T,)`` or ``n <= 16`` clips ``(n, T)``.
        sample_rate: samples per second.
        ax: Axes to draw one clip on; a new figure with one panel per clip when ``None``.

    Returns:
        The figure drawn on.

    Raises:
        DataError: ``audio`` is not one or at most 16 clips, or several clips come with ``ax``.

    Example:
        Two clips of 400 samples at 8 kHz, a panel each, their time axes 0.05 s long:

        >>> clips = 0.5 * torch.sin(2 * math.pi * 440 * torch.arange(800).reshape(2, 400) / 8000)
        >>> figure = waveform(clips, sample_rate=8000)
        >>> [ax.get_title() for ax in figure.axes], float(figure.axes[1].get_xlim()[1])
        (['clip 1', 'clip 2'], 0.05)
        >>> plt.close(figure)
    """
    clips = _clips(audio, ax)
    cells = _clip_panels(clips, ax, size=(6, 2.5), ylabel="amplitude")
    time = torch.arange(clips.shape[1]) / sample_rate
    for cell, clip in zip(cells, clips, strict=True):
        cell.plot(time.numpy(), clip.numpy(), linewidth=0.6)
        cell.set_xlim(0, clips.shape[1] / sample_rate)
        cell.grid(alpha=0.3)
    return cells[0].figure


def spectrogram(
    audio: torch.Tensor, sample_rate: float, n_fft: int = 256, hop: int = 64, ax: Axes | None = None
) -> Figure:
    """Log-magnitude short-time Fourier transform of each clip, in dB, with a shared colour scale.

    The magnitude is taken with a Hann window of ``n_fft`` samples every ``hop`` samples
    (:func:`torch.stft`) and shown as :math:`20 \\log_{10}(|X| / \\sum_t w_t)`, so that a full-scale sine
    reads about -6 dB; bins more than 80 dB below the loudest are shown at that floor.

    Args:
        audio: one clip ``(T,)`` or ``n <= 16`` clips ``(n, T)``, each at least ``n_fft`` samples long.
        sample_rate: samples per second; the frequency axis runs to ``sample_rate / 2``.
        n_fft: window length in samples.
        hop: samples between successive windows.
        ax: Axes to draw one clip on; a new figure with one panel per clip when ``None``.

    Returns:
        The figure drawn on, with a colorbar labelled ``"dB"``.

    Raises:
        DataError: a clip is shorter than ``n_fft``, ``audio`` is not one or at most 16 clips, or several
            clips come with ``ax``.

    Example:
        Half a second of a full-scale 1 kHz sine at 8 kHz: the loudest row is 1 kHz, at about -6 dB.

        >>> time = torch.arange(4000) / 8000
        >>> figure = spectrogram(torch.sin(2 * math.pi * 1000 * time), sample_rate=8000)
        >>> decibels = figure.axes[0].images[0].get_array()  # (n_fft // 2 + 1, frames)
        >>> float(decibels.mean(1).argmax()) * 8000 / 256, round(float(decibels.max()))
        (1000.0, -6)
        >>> len(figure.axes), figure.axes[1].get_ylabel()  # the panel and its colorbar
        (2, 'dB')
        >>> plt.close(figure)
    """
    clips = _clips(audio, ax)
    if clips.shape[1] < n_fft:
        raise DataError(f"a clip of {clips.shape[1]} samples is shorter than the window n_fft={n_fft}")
    window = torch.hann_window(n_fft)
    stft = torch.stft(clips, n_fft, hop_length=hop, window=window, return_complex=True)  # (n, F, frames)
    decibels = 20 * (stft.abs() / window.sum()).clamp_min(1e-12).log10()
    loudest = decibels.max().item()
    cells = _clip_panels(clips, ax, size=(6, 3), ylabel="frequency (Hz)")
    extent = (0.0, clips.shape[1] / sample_rate, 0.0, sample_rate / 2)
    for cell, clip in zip(cells, decibels, strict=True):
        image = cell.imshow(
            clip.numpy(),
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="magma",
            vmin=loudest - DYNAMIC_RANGE_DB,
            vmax=loudest,
            interpolation="nearest",
        )
    cells[0].figure.colorbar(image, ax=cells, label="dB")
    return cells[0].figure
