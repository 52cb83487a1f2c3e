# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Variational autoencoders with amortised SVI
#
# A variational autoencoder (Kingma & Welling 2014; Rezende, Mohamed & Wierstra 2014) is a latent
# variable model $p_\theta(x, z) = p(z)\,p_\theta(x \mid z)$ whose likelihood is a neural network, the
# *decoder*, trained together with a second network, the *encoder*, that guesses $z$ from $x$. This
# tutorial derives the bound it maximises, writes the model as a Pyro program, fits it with a guide
# written by hand and with one pplgen builds from the graph, tightens the bound with importance
# weighting (Burda, Grosse & Salakhutdinov 2016), and then checks whether the fit can be trusted.

# %%
import os

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch

import pplgen

smoke = "CI" in os.environ  # a few epochs on a few points in the tests; full length otherwise
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

train, test = pplgen.data.load("digits"), pplgen.data.load("digits", split="test")
x, labels = train.x, train.y  # 1,258 binarised 8x8 digits as rows of 64 pixels
x_test, labels_test = test.x, test.y
if smoke:
    x_test, labels_test = x_test[:100], labels_test[:100]
print(f"data: scikit-learn's digits, binarised: {len(x)} training and {len(x_test)} test images")

pplgen.plot.image_grid(x[:64], train.image_shape, ncols=16)
plt.title("training digits (8 x 8, black and white)")
plt.show()

# %% [markdown]
# ## The evidence lower bound
#
# Fitting by maximum likelihood needs $\log p_\theta(x) = \log \int p_\theta(x \mid z)\,p(z)\,dz$, an
# integral over $z$ with no closed form once the decoder is a neural network. Take any distribution
# $q(z \mid x)$ that covers the posterior and write the integral as an expectation under it:
#
# $$\log p_\theta(x) = \log \mathbb{E}_{q(z \mid x)}\Big[\frac{p_\theta(x, z)}{q(z \mid x)}\Big]
#   \;\ge\; \mathbb{E}_{q(z \mid x)}\Big[\log \frac{p_\theta(x, z)}{q(z \mid x)}\Big]
#   = \mathcal{L}(x),$$
#
# by Jensen's inequality ($\log$ is concave). $\mathcal{L}$ is the *evidence lower bound* (ELBO). The
# gap is exactly a divergence: since $p_\theta(x, z) = p_\theta(x)\,p_\theta(z \mid x)$,
#
# $$\log p_\theta(x) - \mathcal{L}(x) = \mathrm{KL}\big(q(z \mid x)\,\|\,p_\theta(z \mid x)\big) \ge 0,$$
#
# so raising $\mathcal{L}$ over $q$ pulls $q$ towards the true posterior, and raising it over $\theta$
# raises the likelihood (or shrinks the gap). Splitting $p_\theta(x, z) = p_\theta(x \mid z)\,p(z)$
# gives the form that is computed:
#
# $$\mathcal{L}(x) = \underbrace{\mathbb{E}_{q(z \mid x)}[\log p_\theta(x \mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big)}_{\text{rate}}.$$
#
# With $q(z \mid x) = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)$ and $p(z) = \mathcal{N}(0, I)$ the second
# term is exact, $\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2)$, and pplgen's default
# objective `pplgen.ELBO()` uses that closed form, dimension by dimension.

# %% [markdown]
# ## The reparameterisation trick and amortisation
#
# The gradient of $\mathbb{E}_{q_\phi}[f(z)]$ with respect to $q$'s parameters $\phi$ is the hard part.
# The score-function estimator $\mathbb{E}_{q_\phi}[f(z)\,\nabla_\phi \log q_\phi(z)]$ works for any $q$
# but is noisy. A Normal can instead be drawn as a differentiable function of fixed noise,
#
# $$z = \mu_\phi(x) + \sigma_\phi(x) \odot \epsilon, \quad \epsilon \sim \mathcal{N}(0, I)
#   \qquad\Rightarrow\qquad
#   \nabla_\phi \mathbb{E}_{q_\phi}[f(z)] = \mathbb{E}_{\epsilon}\big[\nabla_\phi f(\mu_\phi(x) +
#   \sigma_\phi(x) \odot \epsilon)\big],$$
#
# the *reparameterisation trick*: gradients flow through the sample into the encoder. Pyro does this
# by itself for every distribution with `has_rsample`, such as `Normal`.
#
# *Amortisation* is the other idea. Instead of free parameters $(\mu_n, \sigma_n)$ for every data point
# (classical variational inference), one encoder network maps any $x$ to its $(\mu, \sigma)$: the cost
# of inference is shared over the data, and a new point is encoded in one pass. The price is the
# *amortisation gap* (Cremer, Li & Duvenaud 2018): the encoder may not reach the best $q$ for each point.

# %% [markdown]
# ## The model and a guide, as Pyro programs
#
# The model draws a code $z \in \mathbb{R}^{d}$ from $\mathcal{N}(0, I)$ for each data point and the
# 64 pixels from independent Bernoullis whose logits the decoder computes. The guide is the encoder:
# it outputs $(\mu, \log\sigma)$ and samples the same site name `z`. Both observe inside
# `pyro.plate("data", ...)`, so pplgen knows that each $z_n$ belongs to one data point.
#
# `pyro.module` keeps a network's parameters in Pyro's global store by name, so we build each
# program with fresh networks in a function and clear the store before each fit.

# %%
z_dim, hidden = 16, 256


def make_vae(z_dim=z_dim, hidden=hidden):
    decoder = pplgen.nn.MLP([z_dim, hidden, hidden, 64])  # z -> 64 Bernoulli logits

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    return model


def make_guide(z_dim=z_dim, hidden=hidden):
    encoder = pplgen.nn.MLP([64, hidden, hidden, 2 * z_dim])  # x -> (mu, log sigma)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    return guide


# %% [markdown]
# `pplgen.inspect` traces the model once and returns its graph: `z` is a latent inside the data plate,
# `x` is observed and has a likelihood, so the family is *latent* and `fit` will run amortised
# stochastic variational inference.

# %%
vae = make_vae()
graph = pplgen.inspect(vae, x[:8])
print(graph.graph["family"], "-", graph.graph["reason"])
for site, attributes in graph.nodes(data=True):
    if attributes["kind"] != "param":
        print(f"  {site}: {attributes['kind']}, {attributes['dist']}, plates {attributes['plates']}")
pplgen.draw(graph)
plt.show()

# %% [markdown]
# ## Fitting with the hand-written guide
#
# `pplgen.fit` holds out 10 % of the data for validation and records, per epoch, the training loss (the
# negative ELBO per digit), the validation loss, the KL term, the KL of every latent dimension and the
# number of *active units*. With `patience` it stops when the validation loss stops improving and
# keeps the best parameters; the last row's `restored_epoch` then says which epoch's row describes them.


# %%
def kept(result):
    """The history row of the parameters the fit kept: the best epoch's when early stopping restored it."""
    return result.history[result.history[-1].get("restored_epoch", len(result.history)) - 1]


epochs = 20 if smoke else 200
settings = dict(epochs=epochs, lr=2e-3, batch_size=128, patience=None if smoke else 20, device=device)

pyro.clear_param_store()
hand = pplgen.fit(vae, x, make_guide(), seed=0, **settings)
print(f"hand-written guide: {len(hand.history)} epochs, validation -ELBO {kept(hand)['val_loss']:.2f} nats")

pplgen.plot.training_curves(hand.history, keys=["loss", "val_loss", "val_kl"])
plt.title("hand-written guide: negative ELBO and its KL term")
plt.show()

# %% [markdown]
# Look for the two loss curves falling together: a validation curve that turns up while the training
# curve keeps falling means the decoder is memorising its training digits. The KL curve is the
# rate: how many nats the code carries about each digit.

# %% [markdown]
# ## A guide built from the graph: `pplgen.AmortisedGuide`
#
# Writing the guide repeats what the graph already says: `z` is a local latent that explains `x`.
# `pplgen.AmortisedGuide` reads the graph and builds, for each local latent, an encoder from the
# observed sites it explains (and the latents it depends on) to a Normal over its dimensions. Leaving
# the guide out of `fit` builds one; here we build it explicitly to see what it made.

# %%
auto_vae = make_vae()
auto_guide = pplgen.AmortisedGuide(auto_vae, hidden=(hidden, hidden)).build(x[:8])
print(auto_guide.describe())

pyro.clear_param_store()
auto = pplgen.fit(auto_vae, x, auto_guide, seed=0, **settings)
print(f"AmortisedGuide: {len(auto.history)} epochs, validation -ELBO {kept(auto)['val_loss']:.2f} nats")

# %% [markdown]
# ## The importance-weighted bound
#
# The ELBO uses one sample of $z$. Averaging $K$ importance weights $w_k = p_\theta(x, z_k) / q(z_k \mid
# x)$ inside the logarithm gives a tighter bound (Burda et al. 2016):
#
# $$\mathcal{L}_K(x) = \mathbb{E}_{z_1, \dots, z_K \sim q(z \mid x)}
#   \Big[\log \frac{1}{K} \sum_{k=1}^{K} w_k\Big], \qquad
#   \mathcal{L} = \mathcal{L}_1 \le \mathcal{L}_K \le \mathcal{L}_{K+1} \le \log p_\theta(x),$$
#
# and $\mathcal{L}_K \to \log p_\theta(x)$ as $K \to \infty$ when the weights are bounded. The same
# quantity serves twice:
#
# * as a **training objective**, `pplgen.IWAE(K)`: the guide is then a proposal for importance
#   sampling rather than an approximation of the posterior in its own right, so it may spread wider
#   and use more latent dimensions. The `"dreg"` gradient (Tucker et al. 2019) keeps the encoder's
#   gradient informative as $K$ grows, where the plain one fades (Rainforth et al. 2018);
# * as an **estimate of $\log p_\theta(x)$** for any fitted model, `pplgen.log_likelihood(result, x,
#   num_samples=K)`, with $K$ in the thousands for papers' test figures.

# %%
iwae_k = 5 if smoke else 10
iwae_vae = make_vae()
pyro.clear_param_store()
iwae = pplgen.fit(
    iwae_vae, x, pplgen.AmortisedGuide(iwae_vae, hidden=(hidden, hidden)),
    objective=pplgen.IWAE(iwae_k, gradient="dreg"), seed=0, **settings,
)  # fmt: skip
print(f"IWAE (K={iwae_k}): {len(iwae.history)} epochs, validation -L_K {kept(iwae)['val_loss']:.2f}")

# %% [markdown]
# Now estimate $\log p_\theta(x)$ on the test digits for each fit with $K = 1, 10, 100, \dots$ importance
# samples. $K = 1$ is a one-sample ELBO; each larger $K$ must give a bound at least as high on average.
# How fast the curve flattens says how good the guide is as a proposal: a guide close to the posterior
# has nearly equal weights, and the bound is tight already at small $K$.

# %%
fits = {"hand-written guide": hand, "AmortisedGuide": auto, f"IWAE, K={iwae_k}": iwae}
ks = [1, 10, 100] if smoke else [1, 10, 100, 1000, 5000]
bounds = {name: [] for name in fits}
for name, result in fits.items():
    for k in ks:
        pyro.set_rng_seed(0)
        bounds[name].append(pplgen.log_likelihood(result, x_test, num_samples=k).mean().item())
    print(f"{name:>20}: " + "  ".join(f"K={k}: {b:7.2f}" for k, b in zip(ks, bounds[name], strict=True)))

fig, ax = plt.subplots(figsize=(6, 4))
for name, values in bounds.items():
    ax.plot(ks, values, marker="o", label=name)
ax.set_xscale("log")
ax.set_xlabel("importance samples K")
ax.set_ylabel("test bound on log p(x), nats per digit")
ax.set_title("the importance-weighted bound tightens with K")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Read the curves in two ways. Along one curve, the rise from $K = 1$ is the part of the ELBO's gap
# that importance sampling recovers. Across curves, compare the right-hand ends (the best estimates of
# each model's $\log p(x)$) and the left-hand ends (their ELBOs): Burda et al. found that training with
# IWAE gives a higher likelihood but a lower ELBO, because its guide is tuned as a proposal.

# %% [markdown]
# ## Judging the fit: rate per dimension and active units
#
# A latent dimension the decoder ignores costs nothing only if $q(z_j \mid x) = p(z_j)$ for every $x$:
# its KL is then zero and its posterior mean does not vary over the data. Burda et al. call a
# dimension *active* when $\mathrm{Cov}_x\big(\mathbb{E}_{q(z_j \mid x)}[z_j]\big) > 0.01$. The history
# records both for pplgen's ELBO (the IWAE objective has no separate KL term, so only its active
# units are recorded). A VAE typically switches off the dimensions it does not need: *posterior
# collapse* when it switches off all of them.

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for offset, (name, result) in enumerate(list(fits.items())[:2]):
    kl = sorted(kept(result)["kl_per_dim"]["z"], reverse=True)
    ax.bar([i + 0.4 * offset for i in range(len(kl))], kl, width=0.4, label=name)
ax.set_xlabel("latent dimension, sorted by KL")
ax.set_ylabel("KL(q || p), nats per digit")
ax.set_title("rate per latent dimension (validation)")
ax.legend()
plt.show()
for name, result in fits.items():
    row = kept(result)
    print(f"{name:>20}: {row['active_units']} of {row['latent_units']} latent dimensions active")

# %% [markdown]
# ## Reconstructions, codes and traversals
#
# `pplgen.reconstruct` encodes each digit to its posterior mean code and decodes it back to pixel
# probabilities. Good reconstructions say the code carries the digit's identity; blurry or wrong ones
# say the rate is too low or the encoder has not learnt.

# %%
result = auto
pplgen.plot.reconstructions(x_test[:32], pplgen.reconstruct(result, x_test[:32]), test.image_shape, ncols=8)
plt.suptitle("test digits and their reconstructions (pixel probabilities)")
plt.show()

# %% [markdown]
# `pplgen.encode` gives each test digit's posterior mean code. With 16 dimensions the scatter shows the
# first two principal components. Look for digits of one class landing together, although the model
# never saw a label: the code has found what distinguishes them.

# %%
codes = pplgen.encode(result, x_test)
pplgen.plot.latent_scatter(codes, labels_test)
plt.title("posterior mean codes of the test digits")
plt.show()

# %% [markdown]
# A traversal decodes one code while a single dimension sweeps a range of values. We sweep the four
# dimensions with the highest rate from a test digit's code; an inactive dimension would give a row of
# identical pictures.

# %%
kl = torch.tensor(kept(result)["kl_per_dim"]["z"])
top = kl.argsort(descending=True)[:4]
values = torch.linspace(-3, 3, 9)
sweeps = codes[0].repeat(len(top), len(values), 1)  # (rows, columns, z_dim)
for row, dim in enumerate(top):
    sweeps[row, :, dim] = values
images = pplgen.decode(result, sweeps.reshape(-1, z_dim)).reshape(len(top), len(values), -1)
pplgen.plot.latent_traversal(images, test.image_shape, values, names=[f"z{int(d) + 1}" for d in top])
plt.title("traversals of the four dimensions with the highest KL")
plt.show()

# %% [markdown]
# Samples from the prior through the decoder show what the model believes a digit is. We show each
# Bernoulli's mean, which is easier to read than a draw of black and white pixels.

# %%
pplgen.plot.image_grid(pplgen.sample(result, 64, mean=True), test.image_shape, ncols=16)
plt.title("samples: decoder means at z ~ N(0, I)")
plt.show()

# %% [markdown]
# ## Did the inference work? Pareto k̂
#
# The guide is also an importance-sampling proposal for the true posterior, and the quality of a
# proposal can be measured. `pplgen.diagnose` draws $S$ samples from $q(z \mid x_n)$ for each test digit,
# fits a generalised Pareto distribution to the largest weights $p(x_n, z) / q(z \mid x_n)$, and
# reports its shape $\hat k$ (Pareto-smoothed importance sampling; Vehtari et al. 2024; Yao et al. 2018).
# Below 0.5 the weights have finite variance and $q$ is close to the posterior; up to
# $\min(1 - 1/\log_{10} S, 0.7)$ estimates are usable after smoothing; above that the importance
# estimates of $\log p(x_n)$ above are unreliable, because a few rare draws dominate. It also reports
# the gap between the importance-weighted bound and the ELBO, a lower bound on the guide's KL from the
# posterior.

# %%
diagnoses = {}
for name in ("AmortisedGuide", f"IWAE, K={iwae_k}"):
    diagnoses[name] = pplgen.diagnose(fits[name], x_test, num_samples=100 if smoke else 1000, nuts=False)
    print(f"--- {name}\n{diagnoses[name]}")

fig, axes = plt.subplots(1, 2, figsize=(13, 3.5), sharey=True, layout="constrained")
for ax, (name, found) in zip(axes, diagnoses.items(), strict=True):
    pplgen.plot.khat(found.khat_points, ax=ax, sample_size=found.num_samples)
    ax.set_title(f"{name}: {ax.get_title()}")
plt.show()

# %% [markdown]
# Each dot is one test digit. Red points are digits whose posterior the guide misses in part; the
# ELBO-trained guide, which minimises $\mathrm{KL}(q \,\|\, p)$, tends to be narrower than the posterior,
# which is exactly what heavy-tailed weights and large $\hat k$ reveal. Compare the two panels to see
# whether training the guide as a proposal (IWAE) made its weights better behaved.
#
# **Summary.** The ELBO is $\log p(x)$ minus the guide's KL from the posterior; the reparameterisation
# trick and an amortised encoder make it cheap to maximise; importance weighting tightens it, both as
# an objective and as an estimate; and rates per dimension, reconstructions, codes and $\hat k$ say
# whether the model uses its latents and whether its guide can be trusted.
