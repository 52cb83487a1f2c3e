# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # GANs and adversarial guides
#
# A generative adversarial network (GAN; Goodfellow et al. 2014) is a sampler: draw noise
# $z \sim p(z)$ and push it through a network, $x = G(z)$. It never writes down $p(x)$. Instead a second
# network, the **discriminator** $D$, learns to tell data from samples, and the generator learns to
# fool it. This tutorial covers:
#
# 1. the minimax game, its optimum and the non-saturating loss;
# 2. why the program has no likelihood, and how pplgen sees that in its graph;
# 3. mode collapse on PacGAN's ring of eight Gaussians, and three training settings compared;
# 4. **adversarial guides**: ALI/BiGAN, a GAN that also learns an encoder $q(z \mid x)$, and adversarial
#    variational Bayes (AVB), a latent model whose guide has no density.

# %%
import math
import os

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method

import pplgen
from pplgen.nn import MLP

smoke = "CI" in os.environ  # a few steps in the tests; full length otherwise (a few minutes on a CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## The minimax game
# Let $D(x) \in (0, 1)$ be the discriminator's probability that $x$ is real. Goodfellow et al. (2014)
# train $D$ and $G$ on one value function, which $D$ maximises and $G$ minimises:
#
# $$\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p_\text{data}}[\log D(x)]
#   + \mathbb{E}_{z \sim p(z)}[\log(1 - D(G(z)))].$$
#
# For a fixed generator with sample density $p_G$, the best discriminator is
# $D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_G(x))$. Putting it back in,
#
# $$V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_G),$$
#
# so the generator minimises the Jensen–Shannon divergence, and the game's optimum is
# $p_G = p_\text{data}$ with $D^* = \tfrac12$ everywhere.

# %% [markdown]
# ## The non-saturating loss
# Write $D(x) = \sigma(a(x))$ with a logit $a$. Early in training the samples are poor, $D(G(z))
# \approx 0$, and $\log(1 - \sigma(a))$ is flat there: its gradient in $a$ is $-\sigma(a) \approx 0$.
# So the generator instead minimises $-\log D(G(z)) = \operatorname{softplus}(-a)$, whose gradient
# $-(1 - \sigma(a)) \approx -1$ is strong exactly when the generator is losing. The fixed point is
# the same. pplgen's default game is this one:
#
# $$\ell_D = \operatorname{softplus}(-a(x)) + \operatorname{softplus}(a(G(z))), \qquad
#   \ell_G = \operatorname{softplus}(-a(G(z))).$$
#
# At the optimum $a = 0$, so $\ell_D = 2 \log 2 \approx 1.386$ and $\ell_G = \log 2 \approx 0.693$.
# An $\ell_D$ near zero means the discriminator has won and the generator's gradients are vanishing.

# %% [markdown]
# ## The data: PacGAN's ring of eight Gaussians
# Eight Gaussians with standard deviation $0.01$ on the unit circle (Lin et al. 2018). The modes are
# known, so we can count which ones the samples find.

# %%
ring = pplgen.data.load("ring8", num_points=1024 if smoke else 4000)
ring_test = pplgen.data.load("ring8", split="test")
modes, std = ring.meta["modes"], ring.meta["std"]
print(f"ring8: {len(ring.x)} training points, {len(modes)} modes, std {std}")

# %% [markdown]
# ## The GAN as a Pyro program
# The generator is an MLP from 16 noise dimensions to 2. The observed site is a `pplgen.Implicit`
# holding the simulated value $G(z)$; the data are passed as `obs`. The program keeps its network in a
# `PyroModule`, so two GANs never share parameters.


# %%
class RingGAN(PyroModule):
    def __init__(self, z_dim: int = 16, hidden: int = 128):
        super().__init__()
        self.z_dim = z_dim
        self.generator = MLP([z_dim, hidden, hidden, 2])

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(self.generator(z), event_dim=1), obs=x)


graph = pplgen.inspect(RingGAN().model, ring.x[:8])
print(graph.graph["family"], "-", graph.graph["reason"])
pplgen.draw(graph)
plt.show()

# %% [markdown]
# In the plate diagram the dashed node is the simulated site. Its value is a deterministic function
# of $z$, so its density would be
# $p_G(x) = \int \delta(x - G(z))\, p(z)\, dz$. That integral has no closed form. When
# $\dim z < \dim x$ it does not even exist: the samples lie on a thin manifold. So `Implicit.log_prob`
# raises, and so does `pplgen.log_likelihood` on the program:

# %%
try:
    pplgen.Implicit(torch.zeros(3, 2), event_dim=1).log_prob(torch.zeros(3, 2))
except pplgen.errors.ImplicitLikelihoodError as error:
    print("log_prob:", error)
try:
    pplgen.log_likelihood(RingGAN().model, ring.x[:8])
except pplgen.errors.ImplicitLikelihoodError as error:
    print("log_likelihood:", error)

# %% [markdown]
# ## Mode collapse, and three ways to train
# A generator can fool its discriminator by covering only some modes well. The discriminator then
# pushes it away, it hops to another mode, and often it never spreads out. This is **mode collapse**.
# We fit the same program with three `pplgen.AdversarialSettings`:
#
# * **non-saturating** — the game above, as in Goodfellow et al. (2014).
# * **WGAN-GP** (Gulrajani et al. 2017) — the critic $f$ (no sigmoid) estimates the Wasserstein
#   distance $W_1 = \sup_{\|f\|_L \le 1} \mathbb{E}_\text{data}[f(x)] - \mathbb{E}_G[f(G(z))]$.
#   The 1-Lipschitz constraint is a penalty $\lambda\, \mathbb{E}(\|\nabla f(\hat x)\| - 1)^2$ at
#   random interpolates $\hat x$ of data and samples, with $\lambda = 10$ and 5 critic steps per
#   generator step.
# * **PacGAN2 + EMA** — the discriminator judges *pairs* of samples (Lin et al. 2018). A collapsed
#   generator's pairs look alike, which is easy to spot. The generator ends with an exponential moving
#   average of its weights (Yazıcı et al. 2019). This is what the zoo's `gan` uses.

# %% [markdown]
# Mode collapse is a matter of *dynamics*, so we also watch it happen. A callback (`fit` calls it
# after every epoch) draws 2,500 samples from the generator as it is and counts their modes.


# %%
def mode_tracker(gan: RingGAN, log: list):
    def record(row):
        with torch.no_grad():
            z = torch.randn(2500, gan.z_dim, device=next(gan.parameters()).device)
            log.append(pplgen.evaluate.mode_metrics(gan.generator(z), modes, std))

    return record


epochs = 2 if smoke else 100
settings = {
    "non-saturating": pplgen.AdversarialSettings(),
    "WGAN-GP": pplgen.AdversarialSettings(loss="wgan_gp", d_steps=5),
    "PacGAN2 + EMA": pplgen.AdversarialSettings(pack=2, ema=0.999),
}
gans, traces = {}, {}
for name, setting in settings.items():
    gan, traces[name] = RingGAN(), []
    gans[name] = pplgen.fit(
        gan.model, ring.x, epochs=epochs, batch_size=128, seed=0, adversarial=setting, device=device,
        callbacks=[mode_tracker(gan, traces[name])],
    )  # fmt: skip
    print(f"{name}: {epochs} epochs, last d_loss {gans[name].history[-1]['d_loss']:.3f}")

# %% [markdown]
# ## Training curves
# GAN losses do not measure sample quality, but they show the game. With the non-saturating loss,
# look for $\ell_D$ staying near $2 \log 2$: neither player is winning. A steady fall of $\ell_D$
# towards zero means the discriminator is winning.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
pplgen.plot.training_curves(gans["non-saturating"].history, ax=ax, keys=["d_loss", "g_loss", "val_d_loss"])
ax.axhline(2 * math.log(2), color="grey", linestyle=":", label="2 log 2")
ax.legend(fontsize="small")
ax.set_title("non-saturating GAN: the two players' losses")
plt.show()

# %% [markdown]
# ## Counting modes
# `pplgen.evaluate.mode_metrics` assigns each sample to its nearest mode. A sample is **high
# quality** if it lies within $3\sigma$ of that mode, and a mode is **covered** if at least one
# high-quality sample lands on it. The **reverse KL**,
# $\sum_k p_k \log(8 p_k)$ over the shares $p_k$ of high-quality samples per mode, is $0$ when the
# modes get equal shares and $\log 8 \approx 2.08$ when all samples sit on one mode.

# %%
samples = {name: pplgen.sample(result, 2500) for name, result in gans.items()}
metrics = {name: pplgen.evaluate.mode_metrics(s, modes, std) for name, s in samples.items()}
print(f"{'setting':<16}{'modes':>6}{'high quality %':>16}{'reverse KL':>12}")
for name, m in metrics.items():
    print(f"{name:<16}{m['modes']:>6}{m['hq_percent']:>16.1f}{m['reverse_kl']:>12.3f}")

# %% [markdown]
# ## Samples over the data
# Red crosses are the true modes and blue dots are 2,500 samples. A good generator puts a tight blob
# on every cross. Look for missing crosses (collapse), and for samples strung between modes. The
# generator is a continuous map of connected noise, so it can only thin those bridges, never cut them.

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), layout="constrained")
pplgen.plot.scatter(ring_test.x, modes, ax=axes[0])
axes[0].set_title("test data")
for ax, (name, s) in zip(axes[1:], samples.items(), strict=True):
    pplgen.plot.scatter(s, modes, ax=ax)
    m = metrics[name]
    ax.set_title(f"{name}\n{m['modes']} of 8 modes, {m['hq_percent']:.0f}% high quality")
for ax in axes:
    ax.set(xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), xlabel="$x_1$", ylabel="$x_2$")
plt.show()

# %% [markdown]
# ## Watching for collapse
# The curves below count, after each epoch, the modes covered and the reverse KL of the generator's
# samples (the raw weights, before PacGAN's average). A collapsing generator covers a few modes and
# hops between them: look for a curve that stays below 8 or jumps around, and for a reverse KL that
# stays high. One run per setting is one draw. The ranking can change with the seed and the length
# of training, which is why PacGAN's Table 1 averages ten seeds. WGAN-GP takes 5 critic steps per
# generator step, so each of its epochs costs about five times as much.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
for name, trace in traces.items():
    epoch = range(1, len(trace) + 1)
    left.plot(epoch, [m["modes"] for m in trace], marker=".", label=name)
    right.plot(epoch, [m["reverse_kl"] for m in trace], marker=".", label=name)
left.set(xlabel="epoch", ylabel="modes covered (of 8)", ylim=(0, 8.5), title="modes covered")
right.axhline(math.log(8), color="grey", linestyle=":", label="log 8: one mode")
right.set(xlabel="epoch", ylabel="reverse KL (nats)", title="reverse KL to equal mode weights")
fig.legend(*right.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize="small")
plt.show()

# %% [markdown]
# ## ALI / BiGAN: a GAN with an encoder guide
# A GAN maps $z \to x$ but not back. Adversarially learned inference (ALI; Dumoulin et al. 2017) and
# BiGAN (Donahue et al. 2017) add an encoder $q(z \mid x)$ and play the game on **pairs**. Real pairs
# are $(x, z)$ with $x \sim p_\text{data}$ and $z \sim q(z \mid x)$. Fake pairs are $(G(z), z)$ with
# $z \sim p(z)$. The discriminator $D(x, z)$ sees both coordinates:
#
# $$\min_{G, q} \max_D \; \mathbb{E}_{p_\text{data}(x)\, q(z \mid x)}[\log D(x, z)]
#   + \mathbb{E}_{p(z)\, p_G(x \mid z)}[\log(1 - D(x, z))].$$
#
# At the optimum the two joint distributions are equal: the encoder's pairs look like the generator's.
# Then $q(z \mid x)$ is the generator's posterior, and with deterministic maps the encoder inverts the
# generator (Donahue et al. 2017). In pplgen the encoder is simply the program's **guide**: a model
# with an `Implicit` site and a guide is trained by ALI.
#
# We use the 8x8 binarised digits. The generator ends in a sigmoid, so its pixels lie in $(0, 1)$.
# The game is kept balanced with an R1 penalty (Mescheder et al. 2018), $\tfrac{\gamma}{2}
# \mathbb{E}\|\nabla D\|^2$ on real pairs, with $\gamma = 1$. Without it, the discriminator soon tells
# binary data from grey samples.

# %%
digits, digits_test = pplgen.data.load("digits"), pplgen.data.load("digits", split="test")


class DigitALI(PyroModule):
    def __init__(self, z_dim: int = 16, hidden: int = 256):
        super().__init__()
        self.z_dim = z_dim
        self.generator = MLP([z_dim, hidden, hidden, 64])
        self.encoder = MLP([64, hidden, hidden, 2 * z_dim])

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(torch.sigmoid(self.generator(z)), event_dim=1), obs=x)

    @pyro_method
    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            loc, raw_scale = self.encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + 1e-3).to_event(1))


ali = DigitALI()
ali_result = pplgen.fit(
    ali.model,
    digits.x,
    ali.guide,
    epochs=2 if smoke else 100,
    batch_size=64,
    seed=0,
    adversarial=pplgen.AdversarialSettings(r1=1.0),
    device=device,
)
print(type(ali_result.trainer).__name__, "- last epoch:", ali_result.history[-1])

# %% [markdown]
# ## What the encoder gives
# `pplgen.encode` gives each image's code, the mean of $q(z \mid x)$. `pplgen.reconstruct` runs
# $x \to z \to G(z)$. ALI never compares a reconstruction with its input pixel by pixel. Only the
# joint game ties the two maps together, so reconstructions are approximate (Dumoulin et al. 2017
# found the same). Look at which ones keep the digit and its rough shape, and which turn into
# another digit.

# %%
recon = pplgen.reconstruct(ali_result, digits_test.x[:24])
pplgen.plot.reconstructions(digits_test.x[:24], recon, (8, 8), ncols=6)
plt.show()
fig, ax = plt.subplots(figsize=(4, 4))
pplgen.plot.image_grid(pplgen.sample(ali_result, 36), (8, 8), ax=ax)
ax.set_title("ALI generator: samples G(z)")
plt.show()

# %% [markdown]
# How much does the code know about the digit? A linear probe fits a logistic regression from codes
# to labels on the training set and scores it on the test set. Chance is 10 %. The raw 64 pixels are
# the baseline a 16-number code must approach.

# %%
errors = ((recon > 0.5).float() != digits_test.x[:24]).float().sum(1).mean().item()
print(f"reconstructions: {errors:.1f} of 64 pixels differ on average (thresholded at 0.5)")
codes, codes_test = pplgen.encode(ali_result, digits.x), pplgen.encode(ali_result, digits_test.x)
probe = pplgen.evaluate.linear_probe(codes, digits.y, codes_test, digits_test.y)
raw = pplgen.evaluate.linear_probe(digits.x, digits.y, digits_test.x, digits_test.y)
print(f"linear probe test accuracy: ALI codes {probe:.1%} ({codes.shape[1]} numbers), raw pixels {raw:.1%}")

# %% [markdown]
# ## AVB: a latent model with an implicit guide
# Now turn it around: the **model** has a likelihood, and the **guide** is the sampler. A guide
# $z = E_\phi(x, \epsilon)$ with noise $\epsilon$ can take any shape, with several modes or curved
# correlations, but $\log q(z \mid x)$ is unknown. So the ELBO
#
# $$\mathcal{L}(x) = \mathbb{E}_{q(z \mid x)}[\log p(x \mid z) + \log p(z) - \log q(z \mid x)]$$
#
# cannot be computed. Adversarial variational Bayes (Mescheder et al. 2017) trains a discriminator
# $T(x, z)$ to tell $(x, z \sim q(z \mid x))$ from $(x, z \sim p(z))$ with the logistic loss. Its
# optimum is the log density ratio $T^*(x, z) = \log q(z \mid x) - \log p(z)$, so
#
# $$\mathcal{L}(x) = \mathbb{E}_{q(z \mid x)}[\log p(x \mid z) - T^*(x, z)].$$
#
# The model and the guide maximise this with $T$ held fixed. The gradient through $T^*$'s own
# parameters vanishes in expectation (their Proposition 2).
#
# A one-dimensional model makes the point: $z \sim N(0, 1)$, $x \sim N(z^2, 0.3^2)$. Given $x = 1$
# the posterior has two modes, near $z = -1$ and $z = +1$. A Gaussian guide must pick one or smear
# across both. The model has no parameters, so here AVB does pure inference. The zoo's
# `pplgen.models.AVB` is the same idea on images, with a decoder trained too.

# %%
NOISE_SD = 0.3


def squared(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z * z, NOISE_SD).to_event(1), obs=x)


class NoisyEncoder(PyroModule):
    """The implicit guide z = E(x, eps): an MLP on the data point and 4 noise inputs."""

    def __init__(self, noise: int = 4, hidden: int = 64):
        super().__init__()
        self.noise = noise
        self.net = MLP([1 + noise, hidden, hidden, 1])

    def draw(self, x):
        # wide noise, so that the first draws straddle z = 0 where the two modes split
        eps = 3.0 * torch.randn(x.shape[0], self.noise, device=x.device)
        return self.net(torch.cat([x, eps], dim=-1))

    @pyro_method
    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pplgen.Implicit(self.draw(x), event_dim=1))


class GaussianEncoder(PyroModule):
    """The usual guide q(z | x) = N(mu(x), s(x)^2), for comparison."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = MLP([1, hidden, hidden, 2])

    @pyro_method
    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            loc, raw_scale = self.net(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + 1e-3).to_event(1))


generator = torch.Generator().manual_seed(0)
z_true = torch.randn(2500, 1, generator=generator)
x_all = z_true**2 + NOISE_SD * torch.randn(2500, 1, generator=generator)
x_toy, x_valid = x_all[:2000], x_all[2000:]  # training and held-out points
graph = pplgen.inspect(squared, x_toy[:8])
print(graph.graph["family"], "-", graph.graph["reason"])

# %% [markdown]
# `fit` sees that the guide samples `z` through `Implicit` and picks the AVB trainer; with the
# Gaussian guide it runs ordinary SVI. Same data, same steps.

# %%
toy = {
    "epochs": 3 if smoke else 100,
    "batch_size": 100,
    "lr": 3e-3,
    "seed": 3,
    "valid": x_valid,
    "device": device,
}
implicit_guide, gaussian_guide = NoisyEncoder(), GaussianEncoder()
avb = pplgen.fit(squared, x_toy, implicit_guide.guide, **toy)
svi = pplgen.fit(squared, x_toy, gaussian_guide.guide, **toy)
print(type(avb.trainer).__name__, "and", type(svi.trainer).__name__)
print(f"AVB: t_loss {avb.history[-1]['val_t_loss']:.3f} (2 log 2 = 1.386 if T could not tell q from p)")

# %% [markdown]
# Both objectives are in nats per held-out point. This model's $\log p(x)$ is a 1-D integral, so we
# compute it on a grid and set it beside each method's estimated $-\mathcal{L}$. SVI's
# $-\mathcal{L}$ is a bound: never below $-\log p(x)$, and the gap is
# $\mathrm{KL}(q \,\|\, p(z \mid x))$. AVB's is an *estimate* through $T$, not a bound, so it can
# fall below.

# %%
grid = torch.linspace(-4.0, 4.0, 1601)


def log_joint_on_grid(x):
    """log p(x, z) on the grid, shape (N, G), for x of shape (N, 1)."""
    return dist.Normal(0.0, 1.0).log_prob(grid) + dist.Normal(grid**2, NOISE_SD).log_prob(x)


step = grid[1] - grid[0]
exact = -(log_joint_on_grid(x_valid).logsumexp(1) + step.log()).mean().item()
print(f"-log p(x) by quadrature:          {exact:.3f} nats per point")
print(f"Gaussian guide, -ELBO (SVI):      {svi.history[-1]['val_loss']:.3f}")
print(f"implicit guide, -ELBO est. (AVB): {avb.history[-1]['val_loss']:.3f}")

# %% [markdown]
# ## The two guides at $x = 1$
# The grey curve is the exact posterior $p(z \mid x = 1) \propto p(z)\, p(x = 1 \mid z)$. The
# histograms are 20,000 draws from each guide. A Gaussian guide cannot have two modes: look for it
# on one side or smeared across the gap. The implicit guide *can* cover both. The share of its
# draws above zero, printed below, says how evenly it does (the exact share is 0.5).

# %%
at = torch.ones(20000, 1, device=device)
with torch.no_grad():
    avb_draws = implicit_guide.draw(at).squeeze(1).cpu()
    loc, raw_scale = gaussian_guide.net(at).chunk(2, dim=-1)
    gaussian_draws = (loc + (F.softplus(raw_scale) + 1e-3) * torch.randn_like(loc)).squeeze(1).cpu()
posterior = log_joint_on_grid(torch.ones(1, 1))[0]
posterior = (posterior - posterior.logsumexp(0) - step.log()).exp()

fig, ax = plt.subplots(figsize=(7, 3.8))
bins = torch.linspace(-3, 3, 121).numpy()
ax.hist(avb_draws.numpy(), bins=bins, density=True, alpha=0.5, label="implicit guide (AVB)")
ax.hist(gaussian_draws.numpy(), bins=bins, density=True, alpha=0.5, label="Gaussian guide (SVI)")
ax.plot(grid.numpy(), posterior.numpy(), color="black", alpha=0.6, label="exact posterior")
ax.set(xlim=(-3, 3), xlabel="z", ylabel="density", title="q(z | x = 1) against p(z | x = 1)")
ax.legend(fontsize="small")
plt.show()
print(f"share of draws with z > 0: AVB {(avb_draws > 0).float().mean():.2f}, "
      f"Gaussian {(gaussian_draws > 0).float().mean():.2f}, exact 0.50")  # fmt: skip

# %% [markdown]
# An implicit guide has no $\log q$, so importance sampling with it is impossible. `pplgen.diagnose`
# says so, and `pplgen.log_likelihood` falls back to the prior as proposal. Tutorial 6 covers the
# diagnostics that *do* apply to guides with a density.

# %%
print(pplgen.diagnose(avb, x_toy[:200], nuts=False))
