# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # DRAW: a recurrent latent model for images
#
# A variational autoencoder decodes an image in one shot from one code. DRAW, the *deep recurrent
# attentive writer* (Gregor, Danihelka, Graves, Rezende & Wierstra 2015), draws it instead over $T$
# steps, the way a person sketches: at each step a recurrent decoder reads a fresh latent $z_t$ and adds
# a stroke to a canvas, and an attention window lets it work on one part of the image at a time. The
# model is still a latent variable model, trained with the ELBO and an amortised guide, but its latent
# is a sequence $z_1, \dots, z_T$. This tutorial writes DRAW as a Pyro program, draws its graph, fits
# it and watches the canvas fill in.

# %%
import math
import os

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from matplotlib.patches import Rectangle

import pplgen

smoke = "CI" in os.environ  # a few epochs on a few images in the tests; full length otherwise
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

try:  # binarized MNIST when the data file is there (PPLGEN_DATA), else the embedded 8x8 digits
    train, test = pplgen.data.load("binarized_mnist"), pplgen.data.load("binarized_mnist", split="test")
    x, x_test = train.x, test.x[:1000]
    if smoke:
        x, x_test = x[:512], x_test[:64]
except pplgen.errors.DataFileError:
    train, test = pplgen.data.load("digits"), pplgen.data.load("digits", split="test")
    x, x_test = train.x, test.x[:64] if smoke else test.x
image_shape, mnist = train.image_shape, train.name == "binarized_mnist"
print(
    f"data: {train.name}, {len(x)} training and {len(x_test)} test images, {image_shape[0]}x{image_shape[1]}"
)

# %% [markdown]
# ## The generative model: a canvas drawn in $T$ steps
#
# Write $c_t$ for the canvas (one logit per pixel) and $h^{dec}_t$ for the state of the decoder, an LSTM
# (Hochreiter & Schmidhuber 1997). For $t = 1, \dots, T$:
#
# $$z_t \sim \mathcal{N}(0, I), \qquad h^{dec}_t = \mathrm{LSTM}^{dec}(z_t, h^{dec}_{t-1}), \qquad
#   c_t = c_{t-1} + \mathrm{write}(h^{dec}_t),$$
#
# and finally $x \sim \mathrm{Bernoulli}(\sigma(c_T))$, pixel by pixel. The latents are independent a
# priori; what ties them together is the decoder's state, which carries $z_1, \dots, z_t$ forward, so
# the image depends on the whole sequence.
#
# ## The guide: reading the error
#
# The guide (the encoder) is another LSTM. At step $t$ it looks at the image and at what is still
# missing from the canvas, the *error image* $\hat x_t = x - \sigma(c_{t-1})$, through a read operation
# steered by the decoder's previous state:
#
# $$r_t = \mathrm{read}(x, \hat x_t, h^{dec}_{t-1}), \quad
#   h^{enc}_t = \mathrm{LSTM}^{enc}([r_t, h^{dec}_{t-1}], h^{enc}_{t-1}), \quad
#   q(z_t \mid x, z_{<t}) = \mathcal{N}\big(\mu(h^{enc}_t), \mathrm{diag}\,\sigma(h^{enc}_t)^2\big).$$
#
# Because it needs $h^{dec}_{t-1}$ and $c_{t-1}$, the guide runs the decoder too, with its own samples:
# the posterior over $z_t$ depends on $z_{<t}$ even though the prior does not.
#
# ## The bound is a sum over steps
#
# The ELBO of this model splits into a reconstruction term and one KL term per step,
#
# $$\mathcal{L}(x) = \mathbb{E}_q\big[\log p(x \mid z_{1:T})\big]
#   - \sum_{t=1}^{T} \mathbb{E}_{q(z_{<t} \mid x)}\Big[\mathrm{KL}\big(q(z_t \mid x, z_{<t}) \,\|\,
#   \mathcal{N}(0, I)\big)\Big].$$
#
# Gregor et al. read $-\mathcal{L}$ as a *description length*: the nats needed to send $x$ by first
# sending each $z_t$ (its KL) and then the pixels given the canvas (the reconstruction term). Each step's
# KL is what that stroke costs.

# %% [markdown]
# ## Attention: Gaussian filterbanks
#
# Reading and writing go through an $N \times N$ grid of Gaussian filters. A linear layer on the decoder
# state gives the grid's centre $(g_X, g_Y)$, the stride $\delta$ between filters, their variance
# $\sigma^2$ and an intensity $\gamma$. Filter $i$ along the $x$ axis is centred at $\mu^i_X = g_X + (i -
# \tfrac{N-1}{2})\,\delta$:
#
# $$F_X[i, a] = \frac{1}{Z_i}\exp\Big(-\frac{(a - \mu^i_X)^2}{2\sigma^2}\Big), \qquad
#   \mathrm{read}(x) = \gamma\, F_Y\, x\, F_X^\top \;(N \times N), \qquad
#   \mathrm{write}(w) = \tfrac{1}{\gamma}\, F_Y^\top\, w\, F_X \;(H \times W).$$
#
# A wide stride gives a coarse glimpse of the whole image; a small one zooms into a patch. Below,
# `pplgen.nn.filterbank` builds $F_X$ and $F_Y$ for two windows and we read a training image through
# both.

# %%
height, width = image_shape
n = 5
image = x[1].reshape(height, width)
windows = {  # (centre y, centre x, stride, variance), in pixels counted from 0
    "wide": ((height - 1) / 2, (width - 1) / 2, (width - 1) / (n - 1), ((width - 1) / (n - 1) / 2) ** 2),
    "narrow": (height * 0.4, width * 0.5, width / 16, (width / 32) ** 2),
}
fig, axes = plt.subplots(1, 5, figsize=(15, 3))
axes[0].imshow(image, cmap="gray_r")
axes[0].set_title("image and the two windows")
for k, (name, (cy, cx, stride, variance)) in enumerate(windows.items()):
    fy = pplgen.nn.filterbank(torch.tensor([cy]), torch.tensor([stride]), torch.tensor([variance]), n, height)
    fx = pplgen.nn.filterbank(torch.tensor([cx]), torch.tensor([stride]), torch.tensor([variance]), n, width)
    glimpse = fy[0] @ image @ fx[0].T  # read with gamma = 1: an N x N glimpse
    half = (n - 1) / 2 * stride
    colour = f"C{k}"
    axes[0].add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, color=colour, lw=2))
    axes[1 + k].plot(fx[0].T.numpy(), color=colour)
    axes[1 + k].set_title(f"{name} window: rows of $F_X$")
    axes[1 + k].set_xlabel("pixel column a")
    axes[3 + k].imshow(glimpse, cmap="gray_r")
    axes[3 + k].set_title(f"{name} glimpse ({n} x {n})")
plt.tight_layout()
plt.show()

# %% [markdown]
# The wide window's filters tile the whole width, so its glimpse is a blurred thumbnail; the narrow
# one's filters crowd together over a few pixels, so its glimpse is a magnified detail. DRAW learns
# where to put both windows at every step.

# %% [markdown]
# ## DRAW as a Pyro program
#
# `pplgen.nn.DRAWNet` holds the deterministic parts: `start` gives the learned initial canvas and LSTM
# states, `decode` makes one decoder step (LSTM, write, add to the canvas), `encode` one encoder step
# (read, LSTM, the parameters of $q(z_t \mid \cdot)$). The program puts the random choices around it:
# one `pyro.sample` per step, named `z_0, ..., z_{T-1}`, inside the data plate. We size it as the zoo
# model `pplgen.models.DRAW` sizes itself for this data (its `config`): the paper's settings for
# binarized MNIST (64 steps, 256 LSTM units, a 2x2 read and a 5x5 write; smaller in the smoke run), and
# far fewer steps and units for images of at most 16 pixels a side, such as the 8x8 digits.

# %%
config = pplgen.models.DRAW.from_dataset(train).config  # the zoo's settings for this data
if smoke and mnist:
    config.update(steps=8, z_dim=10, hidden=64)
print({k: v for k, v in config.items() if k != "image_shape"})
steps, z_dim = config["steps"], config["z_dim"]
net = pplgen.nn.DRAWNet(image_shape, z_dim, config["hidden"], config["read_n"], config["write_n"])


def model(x):
    pyro.module("draw", net)
    state = net.start(x.shape[0])  # learned c_0 and LSTM states
    prior = dist.Normal(x.new_zeros(z_dim), 1.0).to_event(1)
    with pyro.plate("data", x.shape[0]):
        for t in range(steps):
            z = pyro.sample(f"z_{t}", prior)  # z_t ~ N(0, I)
            state = net.decode(z, state)  # h_dec_t = LSTM(z_t, h_dec_{t-1}); c_t = c_{t-1} + write(h_dec_t)
        pyro.sample("x", dist.Bernoulli(logits=state.canvas.flatten(1)).to_event(1), obs=x)


def guide(x):
    pyro.module("draw", net)  # the same networks: the guide re-runs the decoder
    images = x.reshape(-1, height, width)
    state = net.start(x.shape[0])
    with pyro.plate("data", x.shape[0]):
        for t in range(steps):
            state, loc, scale = net.encode(images, state)  # read x and x - sigmoid(c_{t-1})
            z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))  # q(z_t | x, z_<t)
            state = net.decode(z, state)


# %% [markdown]
# ## The graphs of the model and the guide
#
# `pplgen.inspect` finds the sites `z_0 ... z_{T-1}` and groups them into one chain, `z_t`, which
# `pplgen.draw` shows as a single node. In the **model** every step points only at `x`: the prior of
# $z_t$ does not read $z_{t-1}$. In the **guide** each step depends on all earlier ones (through the
# decoder state it re-runs), which the picture shows as a loop on the chain.

# %%
model_graph, guide_graph = pplgen.inspect(model, x[:8]), pplgen.inspect(guide, x[:8])
print(model_graph.graph["family"], "-", model_graph.graph["reason"])
latents = [v for v, kind in model_graph.nodes(data="kind") if kind == "latent"]
print("model edges between latents:", [(u, v) for u, v in model_graph.edges if u in latents and v in latents])
print("guide edges into z_2:", sorted(u for u, _ in guide_graph.in_edges("z_2") if u in latents))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
pplgen.draw(model_graph, ax=axes[0])
axes[0].set_title("model p(x, z_1..T)")
pplgen.draw(guide_graph, ax=axes[1])
axes[1].set_title("guide q(z_1..T | x)")
plt.show()

zoo = pplgen.models.DRAW.from_dataset(train, **config)
same = set(pplgen.inspect(zoo.model, x[:8]).graph["chains"]["z_t"]) == set(latents)
print("the zoo's pplgen.models.DRAW has the same latent sites:", same)

# %% [markdown]
# ## Fitting
#
# The graph says *latent*, so `pplgen.fit` runs amortised SVI with our guide and pplgen's ELBO, whose KL
# terms are exact for these Normals. The history keeps the KL of every dimension of every step. With
# early stopping the best epoch's parameters are restored, and `restored_epoch` names that epoch's row.


# %%
def kept(result):
    """The history row of the parameters the fit kept: the best epoch's when early stopping restored it."""
    return result.history[result.history[-1].get("restored_epoch", len(result.history)) - 1]


epochs = 2 if smoke else (20 if mnist else 250)
lr = 1e-3 if mnist else 3e-3  # the small digits set gives few steps per epoch: take larger ones
pyro.clear_param_store()
result = pplgen.fit(
    model, x, guide, epochs=epochs, lr=lr, batch_size=128, patience=None if smoke else 20, seed=0,
    device=device,
)  # fmt: skip
print(f"{len(result.history)} epochs; validation -ELBO {kept(result)['val_loss']:.2f} nats per image")
pplgen.plot.training_curves(result.history, keys=["loss", "val_loss", "val_kl"])
plt.title("DRAW: negative ELBO and its KL sum")
plt.show()

# %% [markdown]
# ## The bound in nats, and what each step costs
#
# We report the negative ELBO on the test images and importance-sampled estimates of $-\log p(x)$
# with $K$ samples from the guide (a tighter bound as $K$ grows; Burda et al. 2016), and split the
# validation ELBO into the reconstruction term and the KL of each step. For scale: on binarized MNIST
# Gregor et al. report a bound of 80.97 nats with attention and 64 steps (87.40 without attention),
# after far longer training than this tutorial's.

# %%
ks = [1, 10] if smoke else [1, 10, 100, 1000]
for k in ks:
    pyro.set_rng_seed(0)
    nats = -pplgen.log_likelihood(result, x_test, num_samples=k).mean().item()
    what = "negative ELBO (one sample per image)" if k == 1 else f"-log p(x), importance-sampled, K={k}"
    print(f"test {what}: {nats:.2f} nats per image, {nats / (height * width * math.log(2)):.4f} bits/pixel")

last = kept(result)
kl_per_step = [sum(last["kl_per_dim"][f"z_{t}"]) for t in range(steps)]
reconstruction = last["val_loss"] - sum(kl_per_step)
print(
    f"validation: -ELBO {last['val_loss']:.2f} = {reconstruction:.2f} (reconstruction) + KL sum over steps:"
)
print("  " + " + ".join(f"{kl:.2f}" for kl in kl_per_step), "nats")
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(range(1, steps + 1), kl_per_step)
ax.set_xlabel("step t")
ax.set_ylabel("KL, nats per image")
ax.set_title("what each step's latent costs (validation)")
plt.show()

# %% [markdown]
# Steps with a large KL carry much of the image; steps near zero draw little, and their $z_t$ are
# close to the prior. With more steps than an image needs, the later ones tend to idle.

# %% [markdown]
# ## Watching the canvas build up
#
# To see the drawing we run the recurrence by hand. For reconstructions we follow the guide, taking
# each $z_t$ at its posterior mean; for new images we draw each $z_t$ from the prior. Each row is one
# image, each column the picture $\sigma(c_t)$ after step $t$.


# %%
@torch.no_grad()
def run_steps(images=None, count=8):
    """The canvases sigma(c_t) and, with attention, the read and write windows of each step."""
    on = next(net.parameters()).device
    images = None if images is None else images.to(on).reshape(-1, height, width)
    state = net.start(count if images is None else len(images))
    canvases, reads, writes = [], [], []
    for _ in range(steps):
        if images is None:
            z = torch.randn(state.canvas.shape[0], z_dim, device=on)
        else:
            reads.append(net.reader.attention.window(state.decoder[0]))  # placed by h_dec_{t-1}
            state, z, _ = net.encode(images, state)  # z at the posterior mean
        state = net.decode(z, state)
        writes.append(net.writer.attention.window(state.decoder[0]))
        canvases.append(torch.sigmoid(state.canvas).cpu())
    return torch.stack(canvases, dim=1), reads, writes  # canvases: (B, T, H, W)


shown = sorted({round(i * (steps - 1) / 8) for i in range(9)})  # at most 9 of the T steps, the last included
after = ", ".join(str(t + 1) for t in shown)
canvases, _, _ = run_steps(x_test[:6])
rows = torch.cat([canvases[:, shown], x_test[:6].reshape(-1, 1, height, width)], dim=1)  # the data last
pplgen.plot.image_grid(rows.reshape(-1, height * width), image_shape, ncols=len(shown) + 1)
plt.title(f"reconstructing test images: canvas after steps {after}; last column: the data")
plt.show()

canvases, _, _ = run_steps(count=6)
pplgen.plot.image_grid(canvases[:, shown].reshape(-1, height * width), image_shape, ncols=len(shown))
plt.title(f"new images from the prior: canvas after steps {after}")
plt.show()

# %% [markdown]
# ## Where the windows look
#
# The read window (red) is placed by $h^{dec}_{t-1}$ before step $t$, the write window (green) by
# $h^{dec}_t$. The boxes span the filters' centres. Look for windows that move and change size from
# step to step: DRAW attends to different parts of the image at different times.

# %%
canvases, reads, writes = run_steps(x_test[:1])
fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 2.2))
for ax, t in zip(axes, shown, strict=True):
    ax.imshow(canvases[0, t], cmap="gray_r", vmin=0, vmax=1)
    for window, grid, colour in (
        (reads[t], config["read_n"], "red"),
        (writes[t], config["write_n"], "green"),
    ):
        cy, cx, stride = (float(v[0]) for v in window[:3])  # (centre y, centre x, stride, variance, gamma)
        half = (grid - 1) / 2 * stride
        ax.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, color=colour, lw=1.5))
    margin = 0.2 * width  # windows may reach past the image's edge
    ax.set_xlim(-0.5 - margin, width - 0.5 + margin)
    ax.set_ylim(height - 0.5 + margin, -0.5 - margin)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t = {t + 1}")
fig.suptitle("read (red) and write (green) windows while reconstructing a test image")
plt.show()

# %% [markdown]
# ## Samples
#
# Finally, `pplgen.sample` runs the program forward with the observation removed: $z_t$ from the prior at
# every step and the Bernoulli means of the last canvas.

# %%
pplgen.plot.image_grid(pplgen.sample(result, 64, mean=True), image_shape, ncols=16)
plt.title("DRAW samples: sigma(c_T) with z_t ~ N(0, I)")
plt.show()

# %% [markdown]
# **Summary.** DRAW is a VAE whose latent is a sequence and whose decoder is a recurrent painter: the
# ELBO is the reconstruction term plus a KL term per step, the guide reads the error of the canvas so
# far, and Gaussian filterbanks let both networks work on one patch at a time. In pplgen it is an
# ordinary Pyro program with one `pyro.sample` per step, fitted and evaluated like any latent model.
