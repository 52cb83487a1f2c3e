# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Writing generative model programs and reading their graphs
#
# A generative model is a program that draws data. pplgen reads the program's structure and
# decides which of three families it belongs to:
#
# * **exact** — every random choice is observed, e.g. an autoregressive model
#   $p(x) = \prod_i p(x_i \mid x_{<i})$: the likelihood is exact, and training is maximum likelihood.
# * **latent** — $p(x, z) = p(x \mid z)\,p(z)$ with $z$ unobserved: $\log p(x)$ is an integral, so we
#   maximise the ELBO $\mathbb{E}_{q(z \mid x)}[\log p(x, z) - \log q(z \mid x)] \le \log p(x)$ with an
#   amortised guide $q(z \mid x)$.
# * **implicit** — a sampler $x = G(z)$ with no likelihood: a discriminator stands in for it.
#
# The three programs below model the same kind of data. Only their structure differs.

# %%
import os

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from torch import nn

import pplgen

smoke = "CI" in os.environ  # a few steps in the tests, full length otherwise
torch.manual_seed(0)
digits = pplgen.data.load("digits")  # binarised 8x8 digits, flat rows of 64 pixels
x, x_test = digits.x, pplgen.data.load("digits", split="test").x

# %% [markdown]
# ## Exact: a fully visible sigmoid belief net
# Pixel $i$ is Bernoulli with logit $b_i + \sum_{j<i} W_{ij} x_j$. `FVSBN` computes all the
# conditionals in one matrix product, so `log_prob` is exact.

# %%
weight = nn.Parameter(torch.zeros(64, 64))
bias = nn.Parameter(torch.zeros(64))


def fvsbn(x):
    pyro.param("weight", weight)
    pyro.param("bias", bias)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pplgen.distributions.FVSBN(weight, bias), obs=x)


# %% [markdown]
# ## Latent: a variational autoencoder and its encoder guide

# %%
decoder = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 64))
encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 8))


def vae(x):
    pyro.module("decoder", decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(4), 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)


def vae_guide(x):
    pyro.module("encoder", encoder)
    with pyro.plate("data", x.shape[0]):
        loc, log_scale = encoder(x).chunk(2, dim=-1)
        pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


# %% [markdown]
# ## Implicit: a GAN whose output site is simulated

# %%
generator = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())


def gan(x):
    pyro.module("generator", generator)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(16), 1.0).to_event(1))
        pyro.sample("x", pplgen.Implicit(generator(z), event_dim=1), obs=x)


# %% [markdown]
# ## Reading the graphs
# `pplgen.inspect` traces each program once (no side effects) and returns a `networkx.DiGraph`.
# Its nodes are sites and its edges are dependencies. The graph attributes give the family and
# say why.

# %%
programs = {"FVSBN": fvsbn, "VAE": vae, "GAN": gan}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, (name, program) in zip(axes, programs.items(), strict=True):
    graph = pplgen.inspect(program, x[:8])
    print(f"{name}: {graph.graph['family']} — {graph.graph['reason']}")
    pplgen.draw(graph, ax=ax)
plt.show()

# %% [markdown]
# ## Fitting each the way its family allows
# `pplgen.fit` picks maximum likelihood, SVI or adversarial training from the graph.

# %%
epochs = 2 if smoke else 60
results = {
    "FVSBN": pplgen.fit(fvsbn, x, epochs=epochs, lr=1e-2, seed=0),
    "VAE": pplgen.fit(vae, x, vae_guide, epochs=epochs, seed=0),
    "GAN": pplgen.fit(gan, x, epochs=epochs, seed=0),
}
for name in ("FVSBN", "VAE"):
    nats = -pplgen.log_likelihood(results[name], x_test).mean().item()
    print(f"{name}: {nats:.2f} test nats per digit ({'exact' if name == 'FVSBN' else 'importance-sampled'})")

# %% [markdown]
# The FVSBN's figure is exact. The VAE's is an importance-sampled lower bound on $\log p(x)$, made
# with its guide. The GAN has no likelihood at all: we can only look at its samples.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, result) in zip(axes, results.items(), strict=True):
    pplgen.plot.image_grid(pplgen.sample(result, 36, mean=(name == "VAE")), (8, 8), ax=ax)
    ax.set_title(name)
plt.show()
