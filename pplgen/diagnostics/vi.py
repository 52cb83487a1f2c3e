"""Did the variational inference work? Pareto k̂, the bound gap, posterior collapse, and NUTS beside it.

References:
    Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference".
    Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling".
    Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders" (the importance-weighted
    bound; active units).
    Bowman et al. (2016), "Generating sentences from a continuous space" (posterior collapse);
    Chen et al. (2017), "Variational lossy autoencoder" (why a powerful decoder ignores z).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pyro
import torch

from pplgen.diagnostics.draws import Draws, draw
from pplgen.diagnostics.nuts import Marginal, compare_marginals, run_nuts
from pplgen.diagnostics.psis import good_threshold, psis, psis_loo
from pplgen.diagnostics.verdicts import verdicts
from pplgen.errors import ModelError
from pplgen.evaluate.likelihood import importance_log_weights
from pplgen.infer.avb import implicit_sites
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.objectives import ELBO
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.result import FitResult
from pplgen.infer.svi import ACTIVE_THRESHOLD

__all__ = ["Diagnosis", "diagnose"]


@dataclass
class Diagnosis:
    """What :func:`diagnose` found, as numbers and in words.

    Attributes:
        family: the model's family; only ``"latent"`` has an approximate posterior to check.
        num_points: N, the data points diagnosed.
        num_samples: S, the importance samples (per point, or joint draws for global latents).
        threshold: the k̂ below which PSIS is reliable with S draws, min(1 - 1/log10 S, 0.7).
        khat: the overall k̂: of the joint ratios p(x, z)/q(z) when there are global latents (Yao et al.
            2018), else the worst point's.
        khat_points: k̂ per data point: of each point's ratios p(x_n, z_n)/q(z_n | x_n) when every latent is
            local, else PSIS-LOO's (how much each point sways the posterior).
        khat_points_of: ``"importance"`` or ``"loo"``: which of the two ``khat_points`` holds.
        elbo: the ELBO, nats per data point.
        iw_bound: the importance-weighted bound with S samples, nats per data point.
        kl_per_dim: per local latent site, KL(q || p) of each dimension, nats per data point.
        active_units: per local latent site, the dimensions whose posterior mean varies over the data
            (Burda et al. 2016).
        latent_units: per local latent site, all its dimensions.
        marginals: VI against NUTS per scalar latent, when NUTS ran.
        nuts_divergences: NUTS's divergent transitions after warm-up, when it ran.
        notes: what was not checked, and why.
        verdicts: the findings in words; the first is the overall answer.

    Example:
        :func:`diagnose` fills one in; here one is made by hand to show what it derives and prints:

        >>> found = Diagnosis(
        ...     "latent", num_points=10, num_samples=100, elbo=-5.0, iw_bound=-4.75,
        ...     active_units={"z": 0}, latent_units={"z": 2}, verdicts=["Posterior collapse: z is unused."],
        ... )
        >>> found.gap, found.collapsed  # IW bound - ELBO; no latent dimension active
        (0.25, True)
        >>> print(found)
        Inference diagnostics (latent model, 10 data points)
          ELBO -5.000, importance-weighted bound (K=100) -4.750: gap 0.250 nats per data point
        Verdict:
          - Posterior collapse: z is unused.
        >>> found.to_dict()["collapsed"]
        True

    References:
        Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference".
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders" (the importance-weighted
        bound; active units).
    """

    family: str
    num_points: int = 0
    num_samples: int = 0
    threshold: float = math.nan
    khat: float | None = None
    khat_points: torch.Tensor | None = None
    khat_points_of: str = ""
    elbo: float | None = None
    iw_bound: float | None = None
    kl_per_dim: dict[str, list[float]] = field(default_factory=dict)
    active_units: dict[str, int] = field(default_factory=dict)
    latent_units: dict[str, int] = field(default_factory=dict)
    marginals: list[Marginal] = field(default_factory=list)
    nuts_divergences: int | None = None
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float | None:
        """The IW bound minus the ELBO, a lower bound on KL(q || posterior) in nats per data point."""
        return None if self.elbo is None else self.iw_bound - self.elbo

    @property
    def collapsed(self) -> bool:
        """Whether no latent dimension is in use (the posterior equals the prior for every data point)."""
        return bool(self.latent_units) and sum(self.active_units.values()) == 0

    def to_dict(self) -> dict:
        """Plain data (lists and numbers), for JSON."""
        row = asdict(self)
        row["khat_points"] = (
            None if self.khat_points is None else [round(float(k), 4) for k in self.khat_points]
        )
        row["gap"] = self.gap
        row["collapsed"] = self.collapsed
        return row

    def table(self) -> str:
        """The findings as lines of text: numbers first, then the verdicts."""
        points = f", {self.num_points} data points" if self.num_points else ""
        lines = [f"Inference diagnostics ({self.family} model{points})"]
        if self.khat_points is not None:
            k = self.khat_points
            of = "importance ratios p(x, z) / q(z | x)" if self.khat_points_of == "importance" else "PSIS-LOO"
            # with few draws the threshold is 0.5 itself and the middle band is empty: leave it out
            middle = f"{_share((k >= 0.5) & (k < self.threshold))} in [0.5, {self.threshold:.2f}), "
            lines.append(
                f"  Pareto k̂ per data point ({of}, S={self.num_samples}): median {float(k.median()):.2f}, "
                f"max {float(k.max()):.2f}; {_share(k < 0.5)} below 0.5, "
                f"{middle if self.threshold > 0.5 else ''}"
                f"{_share(k >= self.threshold)} at or above {self.threshold:.2f}"
            )
        if self.khat is not None:
            which = "of the worst point" if self.khat_points_of == "importance" else "of the joint ratios"
            lines.append(f"  Pareto k̂ {which}: {self.khat:.2f} (reliable below {self.threshold:.2f})")
        if self.elbo is not None:
            lines.append(
                f"  ELBO {self.elbo:.3f}, importance-weighted bound (K={self.num_samples}) "
                f"{self.iw_bound:.3f}: gap {self.gap:.3f} nats per data point"
            )
        for name, kl in self.kl_per_dim.items():
            shown = " ".join(f"{v:.2f}" for v in kl[:32]) + (" ..." if len(kl) > 32 else "")
            units = self.latent_units.get(name, len(kl))
            active = self.active_units.get(name, 0)
            lines.append(f"  {name}: active units {active} of {units}; KL per dimension {shown}")
        if self.marginals:
            lines.append(
                "  VI against NUTS (shift: VI mean - NUTS mean in NUTS sds; spread: VI sd / NUTS sd)"
            )
            for m in self.marginals[:20]:
                lines.append(
                    f"    {m.name:>12}  VI {m.vi_mean:9.3f} ± {m.vi_sd:7.3f}   NUTS {m.mcmc_mean:9.3f} ± "
                    f"{m.mcmc_sd:7.3f}   shift {m.shift:+6.2f}  spread {m.sd_ratio:5.2f}"
                )
            if len(self.marginals) > 20:
                lines.append(f"    ... and {len(self.marginals) - 20} more")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append("Verdict:")
        lines += [f"  - {verdict}" for verdict in self.verdicts]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _share(mask: torch.Tensor) -> str:
    return f"{100.0 * float(mask.double().mean()):.0f}%"


def diagnose(
    result: FitResult,
    data,
    *,
    num_samples: int = 1000,
    nuts: bool | None = None,
    nuts_samples: int = 500,
    nuts_warmup: int = 500,
    max_nuts_latents: int = 50,
    max_rows: int = 32768,
    seed: int | None = 0,
) -> Diagnosis:
    """Check a fitted latent model's variational posterior on ``data``, and say in words if it worked.

    - **Pareto k̂** (Yao et al. 2018): the importance ratios p(x, z)/q(z | x) of S draws from the guide
      are fitted with a generalised Pareto tail. For an amortised guide (every latent local), one k̂ per
      data point; with global latents, one k̂ of the joint ratios, and PSIS-LOO's k̂ per point. Below
      0.5 the guide is close to the posterior; up to min(1 - 1/log10 S, 0.7) it is usable after
      smoothing; above, its estimates cannot be trusted.
    - **The bound gap**: the importance-weighted bound minus the ELBO, a lower bound on the guide's
      KL to the true posterior (log p(x) ≥ IW bound ≥ ELBO).
    - **Posterior collapse**: KL per latent dimension and active units (a dimension whose posterior mean
      varies over the data by more than 0.01; Burda et al. 2016).
    - **NUTS**: for a model with at most ``max_nuts_latents`` latent numbers over the whole data (or when
      ``nuts=True``), NUTS on the same program, and each marginal's mean and spread beside the guide's.

    Args:
        result: a fit of a latent model (other families get a Diagnosis that says there is nothing to
            check).
        data: the data to diagnose on, as passed to ``fit`` (a held-out split is the honest choice).
        num_samples: S, draws from the guide (1,000 makes the k̂ threshold 0.67).
        nuts: run NUTS (None: when the model is small enough).
        nuts_samples, nuts_warmup: NUTS's draws and warm-up steps.
        max_nuts_latents: the size limit for ``nuts=None``.
        max_rows: rows (points times samples) traced in one pass.
        seed: seeds Pyro's generator first, so a diagnosis repeats; None leaves it as it is.

    Example:
        >>> import torch, pyro, pyro.distributions as dist, pplgen
        >>> def coin(flips):
        ...     p = pyro.sample("p", dist.Beta(1.0, 1.0))
        ...     with pyro.plate("flips", len(flips)):
        ...         pyro.sample("flip", dist.Bernoulli(p), obs=flips)
        >>> flips = (torch.rand(100) < 0.3).float()
        >>> result = pplgen.fit(coin, flips, epochs=1000, batch_size=100, lr=0.01, valid_fraction=0, seed=0)
        >>> found = pplgen.diagnose(result, flips, nuts=False)
        >>> found.khat < 0.5
        True
        >>> found.verdicts[0]
        'Inference worked: k̂ = ... < 0.5: good. ...'
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"expected a FitResult from pplgen.fit, got {type(result).__name__}")
    if num_samples < 25:
        raise ValueError(f"num_samples must be at least 25 for a Pareto fit, got {num_samples}")
    if seed is not None:
        pyro.set_rng_seed(seed)
    if result.family != "latent":
        return Diagnosis(result.family, verdicts=[_nothing_to_check(result.family)])
    tensors = tuple(t.to(result.device) for t in as_tensors(data))
    found = Diagnosis("latent", num_points=len(tensors[0]), num_samples=num_samples)
    found.threshold = good_threshold(num_samples)
    with torch.no_grad(), on_device(result.device), evaluation_mode(result.model, result.guide):
        graph = result.graph
        study = _Study(result.model, result.guide, tensors, graph, num_samples, max_rows)
        if study.implicit:
            found.notes.append(
                "the guide is implicit (AVB): it has no log q, so there are no importance ratios"
            )
        elif study.all_local:
            study.local_weights(found)
            study.collapse(found)
        else:
            study.joint_weights(found)
        if _wants_nuts(nuts, study.latent_numbers(), max_nuts_latents, found):
            with torch.enable_grad():  # NUTS follows the gradient of the log density
                study.against_nuts(found, nuts_samples, nuts_warmup)
    found.verdicts = verdicts(found)
    return found


def _nothing_to_check(family: str) -> str:
    if family == "exact":
        return "Nothing to check: the likelihood is exact (maximum likelihood, no approximate posterior)."
    return (
        "Nothing to check with importance ratios: an implicit model has no likelihood; judge it by its "
        "sample metrics (pplgen evaluate)."
    )


def _wants_nuts(nuts: bool | None, numbers: int, limit: int, found: Diagnosis) -> bool:
    if nuts is None and numbers > limit:
        found.notes.append(
            f"NUTS not run: {numbers:,} latent numbers over these data points (it runs by itself for at most "
            f"{limit}; pass nuts=True, or --nuts yes to pplgen evaluate, to insist)"
        )
    return bool(nuts) or (nuts is None and numbers <= limit)


@dataclass
class _Study:
    """One diagnosis's programs, data and graph, and the draws it makes."""

    model: Callable
    guide: Callable
    tensors: tuple[torch.Tensor, ...]
    graph: object
    num_samples: int
    max_rows: int
    draws: Draws | None = None

    def __post_init__(self):
        self.data_plates = tuple(self.graph.graph["data_plates"])
        latents = [d for _, d in self.graph.nodes(data=True) if d["kind"] == "latent"]
        self.all_local = bool(self.data_plates) and all(d["local"] for d in latents)
        self.implicit = bool(implicit_sites(self.guide, tuple(t[:2] for t in self.tensors)))

    def latent_numbers(self) -> int:
        trace = pyro.poutine.trace(self.model).get_trace(*self.tensors)
        kinds = dict(self.graph.nodes(data="kind"))
        return sum(s["value"].numel() for n, s in trace.nodes.items() if kinds.get(n) == "latent")

    def local_weights(self, found: Diagnosis) -> None:
        """Per point: S importance ratios, their k̂, the ELBO and the IW bound."""
        points = max(1, self.max_rows // self.num_samples)
        log_w = torch.cat(
            [
                importance_log_weights(self.model, self.guide, batch, self.data_plates, self.num_samples)
                for batch in chunks(self.tensors, points)
            ]
        ).double().cpu()  # fmt: skip
        found.khat_points, found.khat_points_of = psis(log_w, dim=1).khat, "importance"
        found.khat = float(found.khat_points.max())
        found.elbo = float(log_w.mean(1).mean())
        found.iw_bound = float((torch.logsumexp(log_w, 1) - math.log(self.num_samples)).mean())

    def joint_weights(self, found: Diagnosis) -> None:
        """S joint draws: the joint ratios' k̂, the ELBO and IW bound per point, PSIS-LOO's k̂ per point."""
        self.draws = draw(
            self.model, self.guide, self.tensors, self.graph, self.num_samples, predictive=False
        )
        log_w = self.draws.log_p - self.draws.log_q
        found.khat = float(psis(log_w).khat)
        found.elbo = float(log_w.mean()) / found.num_points
        found.iw_bound = float(torch.logsumexp(log_w, 0) - math.log(self.num_samples)) / found.num_points
        pointwise = _pointwise(self.draws, self.data_plates)
        if pointwise is not None:
            found.khat_points, found.khat_points_of = psis_loo(pointwise).khat, "loo"

    def collapse(self, found: Diagnosis) -> None:
        """KL per dimension and active units of each local latent, with pplgen's ELBO terms."""
        objective, total = ELBO(analytic_kl=True), len(self.tensors[0])
        kl, locs = {}, {}
        batch_size = max(1, min(total, self.max_rows // 8))
        try:
            for batch in chunks(self.tensors, batch_size):
                _, terms = objective.loss(
                    self.model, self.guide, batch, total, self.data_plates, training=False
                )
                share = len(batch[0]) / total  # each batch's terms are means over its points
                for name, value in terms.kl.items():
                    kl[name] = kl.get(name, 0.0) + value.double().cpu() * share
                for name, loc in terms.loc.items():
                    locs.setdefault(name, []).append(loc.double().cpu())
        except (ModelError, ValueError, NotImplementedError) as error:
            found.notes.append(f"KL per dimension not computed: {error}")
            return
        found.kl_per_dim = {name: [round(float(v), 4) for v in value] for name, value in kl.items()}
        for name, parts in locs.items():
            means = torch.cat(parts)
            found.active_units[name] = int((means.var(0) > ACTIVE_THRESHOLD).sum()) if len(means) > 1 else 0
            found.latent_units[name] = means.shape[1]

    def against_nuts(self, found: Diagnosis, samples: int, warmup: int) -> None:
        mcmc = run_nuts(self.model, self.tensors, num_samples=samples, warmup=warmup)
        vi = self.draws or draw(self.model, self.guide, self.tensors, self.graph, samples, predictive=False)
        found.marginals = compare_marginals(vi.latents, {k: v.cpu() for k, v in mcmc.get_samples().items()})
        divergences = mcmc.diagnostics().get("divergences", {})
        found.nuts_divergences = sum(len(v) for v in divergences.values())


def _pointwise(draws: Draws, data_plates: tuple[str, ...]) -> torch.Tensor | None:
    """The log-likelihood of each data point per draw, ``(S, N)``, summed over its observed sites."""
    total = None
    for name, log_lik in draws.log_likelihood.items():
        names = draws.dims[name][: log_lik.dim() - 1]
        axes = [i for i, n in enumerate(names) if n in data_plates]
        if not axes:
            return None
        moved = log_lik.movedim(axes[0] + 1, 1)
        per_point = moved.reshape(moved.shape[0], moved.shape[1], -1).sum(-1).double()
        total = per_point if total is None else total + per_point
    return total
