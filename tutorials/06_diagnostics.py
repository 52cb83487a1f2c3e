# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Inference diagnostics with ArviZ
#
# Variational inference always returns *something*. The ELBO goes up and the guide $q(z)$ settles,
# but that does not tell you whether $q$ is close to the posterior $p(z \mid x)$. This tutorial
# answers that question three ways, on a model whose posterior we know exactly:
#
# 1. **importance sampling** with the guide as proposal, and how heavy the tail of its weights is
#    (Pareto-smoothed importance sampling and its $\hat k$; Vehtari et al. 2015/2024);
# 2. **PSIS-LOO**, leave-one-out cross-validation from the same machinery (Vehtari, Gelman & Gabry
#    2017), through ArviZ;
# 3. a **reference posterior** from NUTS (Hoffman & Gelman 2014) on the same Pyro program.
#
# We fit one model with two guides: a good one, and a mean-field one that cannot be good here.

# %%
import math
import os
import warnings

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroParam, pyro_method
from torch import nn
from torch.distributions import constraints

import pplgen

with warnings.catch_warnings():  # ArviZ 0.2x announces its coming refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

smoke = "CI" in os.environ  # a few steps in the tests; full length otherwise (a few minutes on a CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## A model with a closed-form posterior
# Bayesian linear regression with a known noise scale: $w \sim N(0, I_2)$ and
# $y_n \sim N(x_n^\top w, \sigma^2)$ for $n = 1, \dots, N$. The two predictors are almost copies of
# each other (correlation $0.98$), so the data pin down $w_1 + w_2$ well but $w_1 - w_2$ poorly. The
# posterior is Gaussian,
#
# $$p(w \mid y) = N(\mu, \Sigma), \qquad \Sigma = (I + X^\top X / \sigma^2)^{-1}, \qquad
#   \mu = \Sigma X^\top y / \sigma^2,$$
#
# with a strong negative correlation between $w_1$ and $w_2$. The evidence is exact too:
# $y \sim N(0, \sigma^2 I + X X^\top)$.

# %%
N, SIGMA, RHO = 50, 1.0, 0.98
generator = torch.Generator().manual_seed(0)
u, v = torch.randn(N, 1, generator=generator), torch.randn(N, 1, generator=generator)
x = torch.cat([u, RHO * u + math.sqrt(1 - RHO**2) * v], dim=1)  # (N, 2), correlated columns
y = x @ torch.tensor([1.0, 0.5]) + SIGMA * torch.randn(N, generator=generator)  # (N,)


def regression(x, y):
    w = pyro.sample("w", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w, SIGMA), obs=y)


cov = torch.linalg.inv(torch.eye(2) + x.T @ x / SIGMA**2)
mean = cov @ x.T @ y / SIGMA**2
exact_evidence = dist.MultivariateNormal(torch.zeros(N), SIGMA**2 * torch.eye(N) + x @ x.T).log_prob(y)
corr = cov[0, 1] / cov.diag().prod().sqrt()
print(f"exact posterior: mean {mean.numpy().round(3)}, sd {cov.diag().sqrt().numpy().round(3)}, "
      f"correlation {corr:.3f}")  # fmt: skip
print(f"exact log p(y) = {exact_evidence:.3f} nats")

graph = pplgen.inspect(regression, x, y)
print(graph.graph["family"], "-", graph.graph["reason"])
pplgen.draw(graph)
plt.show()

# %% [markdown]
# `w` sits outside the data plate: it is a **global** latent, shared by all points. (A VAE's $z_n$
# is local, one per point. The same diagnostics apply to it, one $\hat k$ per point.)
#
# ## Two guides
# * **Mean field**: $q(w) = N(w_1; m_1, s_1^2)\, N(w_2; m_2, s_2^2)$, independent coordinates.
#   Minimising $\mathrm{KL}(q \,\|\, p)$ then matches the posterior's *conditional* spreads, not its
#   marginal ones, so $q$ comes out too narrow along the correlated direction. Here that is a factor
#   of about $\sqrt{1 - \rho^2}$ with $\rho$ the posterior correlation (Bishop 2006, §10.1.2).
# * **Full rank**: $q(w) = N(m, L L^\top)$ with a lower-triangular $L$. It contains the posterior.


# %%
class MeanField(PyroModule):
    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))
        self.log_scale = nn.Parameter(torch.full((2,), -1.0))

    @pyro_method
    def guide(self, x, y):
        pyro.sample("w", dist.Normal(self.loc, self.log_scale.exp()).to_event(1))


class FullRank(PyroModule):
    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))
        self.scale_tril = PyroParam(0.3 * torch.eye(2), constraint=constraints.lower_cholesky)

    @pyro_method
    def guide(self, x, y):
        pyro.sample("w", dist.MultivariateNormal(self.loc, scale_tril=self.scale_tril))


# %% [markdown]
# Each epoch is one full-batch step (`batch_size=N`, no validation split).

# %%
steps = 150 if smoke else 1500
guides = {"mean field": MeanField(), "full rank": FullRank()}
results = {
    name: pplgen.fit(
        regression,
        (x, y),
        q.guide,
        epochs=steps,
        batch_size=N,
        lr=0.02,
        valid_fraction=0,
        seed=0,
        device=device,
    )  # fmt: skip
    for name, q in guides.items()
}
for name, result in results.items():
    print(f"{name}: -ELBO {result.history[-1]['loss']:.4f} nats per data point after {steps} steps")

# %% [markdown]
# ## Importance sampling with the guide as proposal
# Any guide with a density is an importance sampler for the posterior. With $S$ draws
# $w_s \sim q$ and weights $r_s = p(y, w_s) / q(w_s)$,
#
# $$p(y) = \mathbb{E}_q[r] \approx \frac1S \sum_s r_s, \qquad
#   \mathbb{E}_{p(w \mid y)}[h(w)] \approx \frac{\sum_s r_s\, h(w_s)}{\sum_s r_s}.$$
#
# The estimates are consistent for any $q$ that covers the posterior, but how fast they converge
# depends on the *tail* of the weights. Where $q$ is too narrow, rare draws in the posterior's far
# tail get huge weights. The variance of $r$ can then be infinite, and a run of $S$ draws looks fine
# until one draw swamps the rest.
#
# `pplgen.to_inference_data` draws from the guide and keeps each draw's log weight
# $\log p(y, w_s) - \log q(w_s)$ in `sample_stats`, beside ArviZ's usual groups.

# %%
num_draws = 100 if smoke else 2000
idata = {name: pplgen.to_inference_data(r, (x, y), num_samples=num_draws) for name, r in results.items()}
print(idata["full rank"])
log_weights = {
    name: torch.as_tensor(data.sample_stats["log_weight"].values).flatten() for name, data in idata.items()
}
for name, lw in log_weights.items():
    estimate = (lw.logsumexp(0) - math.log(len(lw))).item()
    ess = (2 * lw.logsumexp(0) - (2 * lw).logsumexp(0)).exp().item()  # (sum r)^2 / sum r^2
    print(f"{name}: IS log p(y) = {estimate:.3f} (exact {exact_evidence:.3f}); "
          f"effective sample size {ess:.0f} of {len(lw)}")  # fmt: skip

# %% [markdown]
# ## Pareto-smoothed importance sampling and $\hat k$
# Vehtari et al. (2015; JMLR 2024) fit a generalised Pareto distribution to the $M = \min(S/5,
# 3\sqrt S)$ largest weights. Its shape $k$ measures the tail: the weights have finite moments of
# every order below $1/k$, so $k < \tfrac12$ means finite variance and $k < 1$ a finite mean. The
# fitted $\hat k$ is a diagnostic:
#
# * $\hat k < 0.5$ — good: $q$ is close to the target.
# * $\hat k < \min(1 - 1/\log_{10} S,\ 0.7)$ — usable after smoothing, which replaces the largest
#   weights by the fitted distribution's quantiles.
# * above that — the estimates cannot be trusted with $S$ draws; typically $q$ is too narrow.
#
# Yao et al. (2018) proposed exactly this check for variational inference. `pplgen.diagnostics.psis`
# smooths and fits; `describe_khat` puts $\hat k$ in words.

# %%
for name, lw in log_weights.items():
    khat = float(pplgen.diagnostics.psis(lw).khat)
    print(f"{name}: {pplgen.diagnostics.describe_khat(khat, len(lw))}")

fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
for name, lw in log_weights.items():
    normalised = (lw - lw.logsumexp(0)).exp().sort(descending=True).values
    ax.plot(torch.arange(1, len(lw) + 1).numpy(), normalised.numpy(), label=name)
ax.axhline(1 / len(lw), color="grey", linestyle=":", label="equal weights, 1/S")
ax.set(xscale="log", yscale="log", xlabel="rank of the draw", ylabel="normalised weight")
ax.set_title("importance weights of the guide's draws, largest first")
ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# Look at the left end of the curves. A good proposal's largest weights are a few times $1/S$.
# A poor one's largest few draws hold a large share of the total weight.
#
# ## `pplgen.diagnose`: the whole check in one call
# `pplgen.diagnose` does all of this: it fits $\hat k$ of the joint ratios and gives the ELBO and
# the importance-weighted bound. Their gap is a lower bound on $\mathrm{KL}(q \,\|\, p)$. For a model
# with few latent numbers it also runs NUTS on the same program and sets each marginal beside the
# guide's. Then it says in words whether inference worked.

# %%
nuts = {"nuts_samples": 100, "nuts_warmup": 100} if smoke else {"nuts_samples": 1000, "nuts_warmup": 500}
diagnoses = {name: pplgen.diagnose(r, (x, y), num_samples=num_draws, **nuts) for name, r in results.items()}
for name, diagnosis in diagnoses.items():
    print(f"--- {name} ---")
    print(diagnosis)

# %% [markdown]
# Look at three things. First, $\hat k$ of the joint ratios against the threshold. Second, the
# `spread` column: the guide's sd over NUTS's, where mean field should fall well below 1. Third, the
# bound gap. The gap can look tiny *per data point* while $\hat k$ already says the guide is poor:
# KL is an average and misses the tail that $\hat k$ measures.
#
# ## VI against NUTS
# NUTS (Hoffman & Gelman 2014) is Hamiltonian Monte Carlo that tunes its own path length. It samples
# the exact posterior of the same Pyro program, with no guide, at a higher price. We run it ourselves
# and convert it with `pplgen.to_inference_data`, which names the axes as for the guides. ArviZ's
# forest plot then shows all three posteriors.

# %%
mcmc = pyro.infer.MCMC(
    pyro.infer.NUTS(regression),
    num_samples=100 if smoke else 1000,
    warmup_steps=100 if smoke else 500,
    disable_progbar=True,
)
mcmc.run(x, y)
nuts_draws = mcmc.get_samples()["w"]  # (S, 2)
print(f"NUTS: mean {nuts_draws.mean(0).numpy().round(3)}, sd {nuts_draws.std(0).numpy().round(3)}")
nuts_idata = pplgen.to_inference_data(mcmc, (x, y))
az.plot_forest(
    [idata["mean field"], idata["full rank"], nuts_idata],
    model_names=["mean field", "full rank", "NUTS"],
    var_names=["w"],
    combined=True,
    figsize=(6, 3),
)
plt.title("94% intervals of w under each posterior")
plt.show()

# %% [markdown]
# `pplgen.plot.marginals` overlays each marginal's histograms. Look for the mean-field histograms
# sitting inside NUTS's: right centre, too narrow.

# %%
for name, data in idata.items():
    draws = {"w": torch.as_tensor(data.posterior["w"].values).reshape(-1, 2)}
    pplgen.plot.marginals(draws, {"w": nuts_draws}, labels=(name, "NUTS"))
    plt.show()

# %% [markdown]
# The joint picture shows why. The exact posterior is a thin ellipse along $w_1 + w_2 =$ const
# (black: 1 and 2 sd contours). The mean-field guide's draws form an axis-aligned blob that fits
# *inside* it, so it never proposes the ellipse's ends. Yet those are exactly where the weights
# $p / q$ explode.

# %%
angles = torch.linspace(0, 2 * math.pi, 200)
circle = torch.stack([angles.cos(), angles.sin()])  # (2, 200)
ellipse = torch.linalg.cholesky(cov) @ circle  # 1 sd contour, centred at 0

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True, layout="constrained")
for ax, (name, data) in zip(axes, idata.items(), strict=True):
    draws = torch.as_tensor(data.posterior["w"].values).reshape(-1, 2)
    ax.scatter(nuts_draws[:, 0], nuts_draws[:, 1], s=4, alpha=0.3, color="tab:grey", label="NUTS")
    ax.scatter(draws[:, 0], draws[:, 1], s=4, alpha=0.3, color="tab:blue", label=f"{name} guide")
    for k in (1, 2):
        ax.plot(mean[0] + k * ellipse[0], mean[1] + k * ellipse[1], color="black", linewidth=1)
    k_joint = diagnoses[name].khat
    ax.set(xlabel="$w_1$", ylabel="$w_2$", title=f"{name}: joint Pareto k\u0302 = {k_joint:.2f}")
    ax.legend(fontsize="small", loc="upper right", markerscale=3)
plt.show()

# %% [markdown]
# ## PSIS-LOO through ArviZ
# Leave-one-out cross-validation asks how well the model predicts each point when that point is
# left out:
#
# $$\mathrm{elpd}_\text{loo} = \sum_{n=1}^N \log p(y_n \mid y_{-n}), \qquad
#   p(y_n \mid y_{-n}) = \int p(y_n \mid w)\, p(w \mid y_{-n})\, dw.$$
#
# Refitting $N$ times is expensive. Vehtari, Gelman & Gabry (2017) reuse the posterior draws with
# importance ratios $r_s^{(n)} \propto 1 / p(y_n \mid w_s)$ and smooth them with PSIS. Each point gets
# its own $\hat k$. A large one marks an *influential* point: leaving it out moves the posterior too
# far for the draws to follow. This is a question about the data and the model, not about the guide.
#
# `to_inference_data` stores $\log p(y_n \mid w_s)$ in the `log_likelihood` group, so `az.loo`
# works directly. Here the draws come from a guide, not from the posterior, so LOO inherits the
# guide's error. NUTS's draws give the reference.

# %%
loos = {name: az.loo(data, pointwise=True) for name, data in {**idata, "NUTS": nuts_idata}.items()}
for name, loo in loos.items():
    print(f"{name:>10}: elpd_loo {loo.elpd_loo:.2f} ± {loo.se:.2f}, p_loo {loo.p_loo:.2f}, "
          f"max k\u0302 {float(loo.pareto_k.max()):.2f}")  # fmt: skip

fig, axes = plt.subplots(1, 3, figsize=(15, 3.5), sharey=True, layout="constrained")
for ax, (name, loo) in zip(axes, loos.items(), strict=True):
    az.plot_khat(loo, ax=ax, show_hlines=True)
    ax.set_title(f"PSIS-LOO k\u0302 per point: {name}")
plt.show()

# %% [markdown]
# `p_loo` is the effective number of parameters. Compare it with the 2 weights in $w$. When any
# point's $\hat k$ exceeds 0.5, `az.loo` also warns (above, if it happened in this run): read the
# plots to see which points, and whether NUTS's draws agree that they are influential.
#
# ## The same check on your own runs
# `pplgen.diagnose(result, data)` works for any fitted latent model. For a VAE it gives one
# $\hat k$ per data point, from the ratios $p(x_n, z_n) / q(z_n \mid x_n)$ of the amortised guide.
# `pplgen.plot.khat` draws them, coloured by the thresholds above. For a model with global latents,
# like this one, the points are PSIS-LOO's instead:

# %%
diagnosis = diagnoses["mean field"]
figure = pplgen.plot.khat(diagnosis.khat_points, sample_size=diagnosis.num_samples)
of = "PSIS-LOO" if diagnosis.khat_points_of == "loo" else "importance ratios"
figure.suptitle(f"mean field: Pareto k\u0302 per point ({of})")
plt.show()

# %% [markdown]
# From the command line, `pplgen evaluate RUN --diagnose` prints the same table and writes
# `khat.png`.
