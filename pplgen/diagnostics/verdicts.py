"""The findings of :func:`pplgen.diagnose` in words: worked, questionable or did not work, and why.

References:
    Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pplgen.diagnostics.psis import describe_khat

if TYPE_CHECKING:
    from pplgen.diagnostics.nuts import Marginal
    from pplgen.diagnostics.vi import Diagnosis

__all__ = ["verdicts"]

SHIFT_OK, SPREAD_OK = 0.25, (0.8, 1.25)  # VI agrees with NUTS: means within 0.25 sd, spreads within 20 %
# an amortised guide is questionable when more than 10 % of the points have k̂ above the threshold, and
# has failed when more than half have
BAD_SHARE, FAILED_SHARE = 0.1, 0.5


def verdicts(found: Diagnosis) -> list[str]:
    """The findings in words; the first names the overall answer and its weightiest reason."""
    findings = _khat_findings(found) + _collapse_findings(found) + _nuts_findings(found)
    if found.gap is not None:
        findings.append(
            (
                0,
                f"The importance-weighted bound lies {found.gap:.3f} nats per data point above the ELBO, so "
                "the guide's KL from the true posterior is at least that.",
            )
        )
    if not findings:
        return ["Not checked: no importance ratios could be formed (see the notes)."]
    level = max(worry for worry, _ in findings)
    first = next(i for i, (worry, _) in enumerate(findings) if worry == level)
    headline = ["Inference worked", "Inference is questionable", "Inference did not work"][level]
    reason = findings.pop(first)[1]
    # lower-case the reason's first word to follow the colon, unless it is an acronym such as "VI"
    lowered = reason if reason[:2].isupper() else reason[0].lower() + reason[1:]
    return [f"{headline}: {lowered}", *(sentence for _, sentence in findings)]


def _khat_findings(found: Diagnosis) -> list[tuple[int, str]]:
    """(worry, sentence) about k̂; worry 0 fine, 1 questionable, 2 did not work."""
    if found.khat_points is not None and found.khat_points_of == "importance":
        bad = float((found.khat_points >= found.threshold).double().mean())
        if bad > BAD_SHARE:
            return [
                (
                    1 if bad <= FAILED_SHARE else 2,
                    f"The guide's posteriors are unreliable for {bad:.0%} of the data points (k̂ at or above "
                    f"{found.threshold:.2f}): there q(z | x) misses part of p(z | x), so estimates from the "
                    "guide (and the ELBO) are off.",
                )
            ]
        good = float((found.khat_points < 0.5).double().mean())
        return [
            (
                int(good < 0.5),
                f"k̂ is below {found.threshold:.2f} for {1 - bad:.0%} of the data points (below 0.5 for "
                f"{good:.0%}): importance sampling with the guide as proposal is reliable.",
            )
        ]
    if found.khat is None:
        return []
    level = 0 if found.khat < 0.5 else 1 if found.khat < found.threshold else 2
    return [(level, describe_khat(found.khat, found.num_samples))]


def _collapse_findings(found: Diagnosis) -> list[tuple[int, str]]:
    if found.collapsed:
        return [
            (
                2,
                "Posterior collapse: no latent dimension is in use (the posterior mean does not move with "
                "the data), so the decoder models the data without z and the latents carry no information.",
            )
        ]
    said = []
    for name, units in found.latent_units.items():
        active = found.active_units.get(name, 0)
        kl = sum(found.kl_per_dim.get(name, []))
        used = f"all {units} dimensions are active"
        if active < units:
            used = f"{active} of {units} dimensions are active (the other {units - active} keep the prior)"
        said.append(
            (0, f"{name}: {used}; its KL, {kl:.2f} nats per data point, bounds what it says of a point.")
        )
    return said


def _agrees(m: Marginal) -> bool:
    return abs(m.shift) <= SHIFT_OK and SPREAD_OK[0] <= m.sd_ratio <= SPREAD_OK[1]


def _nuts_findings(found: Diagnosis) -> list[tuple[int, str]]:
    if not found.marginals:
        return []
    off = [m for m in found.marginals if not _agrees(m)]
    if not off:
        said = [
            (
                0,
                f"VI's marginals agree with NUTS's: every mean within {SHIFT_OK} posterior sds and every "
                f"spread within {SPREAD_OK[0]:.2f}-{SPREAD_OK[1]:.2f} of NUTS's ({len(found.marginals)} "
                "compared).",
            )
        ]
    else:
        said = []
        narrow = [m.name for m in off if m.sd_ratio < SPREAD_OK[0]]
        shifted = [m.name for m in off if abs(m.shift) > SHIFT_OK]
        wide = [m.name for m in off if m.sd_ratio > SPREAD_OK[1]]
        if narrow:
            said.append(
                (
                    1,
                    f"VI is overconfident for {_names(narrow)}: its spread is below {SPREAD_OK[0]:.0%} of "
                    "NUTS's (mean field ignores correlations between latents).",
                )
            )
        if shifted:
            said.append((1, f"VI's mean is off by more than {SHIFT_OK} posterior sds for {_names(shifted)}."))
        if wide:
            said.append((1, f"VI is wider than NUTS for {_names(wide)}."))
    if found.nuts_divergences:
        said.append(
            (
                1,
                f"NUTS had {found.nuts_divergences} divergent transitions: its own draws may be biased, so "
                "read the comparison with care.",
            )
        )
    return said


def _names(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
