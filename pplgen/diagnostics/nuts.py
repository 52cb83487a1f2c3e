"""NUTS on the same program as a fitted guide, and how the two posteriors' marginals compare.

A small model's exact posterior can be sampled with the no-U-turn sampler; set beside the guide's draws it
shows where variational inference is biased (means) or overconfident (mean field's too-small spreads).

References:
    Hoffman & Gelman (2014), "The No-U-Turn sampler".
    Turner & Sahani (2011), "Two problems with variational expectation maximisation for time-series
    models" (mean field's underestimated variances); Bishop (2006), §10.1.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro.infer import MCMC, NUTS

__all__ = ["Marginal", "compare_marginals", "run_nuts"]


def run_nuts(
    model: Callable,
    tensors: tuple[torch.Tensor, ...],
    *,
    num_samples: int = 500,
    warmup: int = 500,
    num_chains: int = 1,
) -> MCMC:
    """NUTS on ``model(*tensors)``: its latents given all the data, the program's networks held fixed."""
    mcmc = MCMC(
        NUTS(model, jit_compile=False), num_samples=num_samples, warmup_steps=warmup, num_chains=num_chains,
        disable_progbar=True,
    )  # fmt: skip
    mcmc.run(*tensors)
    return mcmc


@dataclass
class Marginal:
    """One scalar component of a latent under both posteriors.

    Attributes:
        name: the site, with the component's index where the site has several (``b[1]``).
        vi_mean: the guide's mean.
        vi_sd: the guide's standard deviation.
        mcmc_mean: NUTS's mean.
        mcmc_sd: NUTS's standard deviation.
        shift: how far the guide's mean lies from NUTS's, in posterior sds, (vi_mean - mcmc_mean) / mcmc_sd.
        sd_ratio: vi_sd / mcmc_sd; below 1 the guide is overconfident.
    """

    name: str
    vi_mean: float
    vi_sd: float
    mcmc_mean: float
    mcmc_sd: float
    shift: float
    sd_ratio: float


def compare_marginals(vi: dict[str, torch.Tensor], mcmc: dict[str, torch.Tensor]) -> list[Marginal]:
    """Every scalar component of the latents both posteriors share; draws ``(S, ...)`` per site."""
    found = []
    for name in vi:
        if name not in mcmc:
            continue
        ours = vi[name].double().reshape(vi[name].shape[0], -1)
        theirs = mcmc[name].double().reshape(mcmc[name].shape[0], -1)
        shape = vi[name].shape[1:]
        for index in range(ours.shape[1]):
            label = name if not shape.numel() or ours.shape[1] == 1 else f"{name}{_index(index, shape)}"
            vi_mean, vi_sd = float(ours[:, index].mean()), float(ours[:, index].std())
            mc_mean, mc_sd = float(theirs[:, index].mean()), float(theirs[:, index].std())
            scale = mc_sd if mc_sd > 0 else math.nan
            found.append(
                Marginal(label, vi_mean, vi_sd, mc_mean, mc_sd, (vi_mean - mc_mean) / scale, vi_sd / scale)
            )
    return found


def _index(flat: int, shape: torch.Size) -> str:
    position = []
    for size in reversed(shape):
        flat, rest = divmod(flat, size)
        position.append(rest)
    return "[" + ", ".join(str(p) for p in reversed(position)) + "]"
