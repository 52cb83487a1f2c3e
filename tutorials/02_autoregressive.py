# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Autoregressive models and exact likelihood: from NADE to PixelCNN
#
# Any distribution over $D$ variables can be written, without approximation, with the chain rule:
#
# $$p(x) = \prod_{i=1}^{D} p(x_i \mid x_{<i}), \qquad x_{<i} = (x_1, \dots, x_{i-1}).$$
#
# An **autoregressive model** gives each conditional to a neural network. If every conditional is a
# proper distribution (a Bernoulli for a binary pixel), the product is a proper distribution, and
# $\log p(x) = \sum_i \log p(x_i \mid x_{<i})$ is **exact**: no latent variable, no bound. Training is
# plain maximum likelihood, and pplgen calls such a program's family `exact`.
#
# The whole art is in computing all $D$ conditionals in **one** network pass while making sure that
# conditional $i$ never looks at $x_i$ or anything after it. This tutorial follows the history of
# that idea: FVSBN (Frey 1998), NADE (Larochelle & Murray 2011), MADE (Germain et al. 2015) and
# PixelCNN (van den Oord et al. 2016).

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import pyro
import torch
from pyro.nn import PyroModule, pyro_method
from torch import nn

import pplgen
from pplgen.distributions import FVSBN, MADE, NADE, PixelCNN
from pplgen.nn import MADENet, NADENet, PixelCNNNet

smoke = "CI" in os.environ  # a few steps in the tests; full length otherwise (meant for a GPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

train = pplgen.data.load("digits")  # binarised 8x8 digits, flat rows of 64 pixels in raster order
x, x_test = train.x, pplgen.data.load("digits", split="test").x
D = x.shape[1]
print(f"digits: {len(x)} training and {len(x_test)} test images of {D} binary pixels")

# %% [markdown]
# ## Nats and bits per dimension
# A test set's average $-\log p(x)$ in natural logarithms is in **nats** per data point. Dividing by
# $D \ln 2$ gives **bits per dimension**, the number of bits an ideal coder driven by the model would
# spend per pixel (`pplgen.bits_per_dim`). For binary pixels 1 bit/dim is what a coin flip costs, so
# a useful model must get well below 1.

# %% [markdown]
# ## FVSBN: a logistic regression per pixel
# The fully visible sigmoid belief net makes each conditional a logistic regression on the pixels
# before it: $p(x_i = 1 \mid x_{<i}) = \sigma(b_i + \sum_{j<i} W_{ij} x_j)$. Only the strictly lower
# triangle of $W$ is used, so all $D$ logits are one matrix product, $O(D^2)$ parameters.


# %%
class FVSBNProgram(PyroModule):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", FVSBN(self.weight, self.bias), obs=x)


# %% [markdown]
# ## NADE: share one hidden layer between the conditionals
# NADE gives conditional $i$ a hidden layer computed from $x_{<i}$ with weights $W$ shared by all
# conditionals:
#
# $$h_i = \sigma(c + W_{:,<i}\, x_{<i}), \qquad p(x_i = 1 \mid x_{<i}) = \sigma(b_i + V_i^\top h_i).$$
#
# The pre-activation $a_i = c + W_{:,<i} x_{<i}$ is a running sum, $a_{i+1} = a_i + W_{:,i} x_i$, so
# all $D$ conditionals cost $O(DH)$ rather than $O(D^2 H)$.


# %%
class NADEProgram(PyroModule):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = NADENet(dim, hidden)

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", NADE(self.net), obs=x)


# %% [markdown]
# ## MADE: an autoencoder with masks
# MADE starts from an ordinary MLP and multiplies each weight matrix by a 0/1 mask. Every input gets
# a degree $m(x_i) = i$ (its place in an ordering) and every hidden unit a degree $m(k) \in [1, D-1]$.
# A hidden connection $j \to k$ is kept when $m(k) \ge m(j)$, an output connection $k \to i$ when
# $m(i) > m(k)$. Then every path from $x_j$ to output $i$ has $j < i$: the network is autoregressive.
# With several orderings (masks) trained at once (order-agnostic training, Uria et al. 2014), the
# test density is their average $\frac{1}{M}\sum_m p_m(x)$, still exact.


# %%
class MADEProgram(PyroModule):
    def __init__(self, dim, hidden, num_masks):
        super().__init__()
        self.net = MADENet(dim, hidden, num_masks=num_masks)

    @pyro_method
    def model(self, x):
        mask = "random" if self.training else None  # one random ordering per step; their average in eval
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", MADE(self.net, mask=mask), obs=x)


# %% [markdown]
# Each output row of the product of the masks counts the paths from each input. It is zero on and
# above the diagonal once rows and columns are sorted by the ordering; unsorted, the pattern of a
# random ordering looks scrambled.

# %%
made_demo = MADENet(12, [24, 24], num_masks=2, seed=0)
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for m, ax in zip(range(2), axes[:2], strict=True):
    paths = made_demo.masks(m)[0]
    for mask in made_demo.masks(m)[1:]:
        paths = mask @ paths  # (outputs, inputs): the number of paths from input j to output i
    ax.imshow(paths > 0, cmap="Greys")
    ax.set(title=f"mask {m}: paths input → output", xlabel="input j", ylabel="output i")
order = made_demo.orders[1]
axes[2].imshow((paths > 0)[order][:, order], cmap="Greys")
axes[2].set(title="mask 1, sorted by its ordering", xlabel="input (in order)", ylabel="output (in order)")
plt.show()

# %% [markdown]
# ## PixelCNN: masked convolutions for images
# On images a convolution is the natural way to share weights. PixelCNN masks each convolution kernel
# so that the output at a pixel sees only the pixels before it in raster order (rows above, and to the
# left in its own row). The first layer uses mask **A** (the centre pixel is hidden too: it is the one
# being predicted); later layers use mask **B** (the centre is allowed: it already depends only on
# earlier pixels).
#
# Stacking masked $3\times3$ convolutions leaves a **blind spot**: pixels above and to the right that
# the growing receptive field never reaches, although they come earlier in the order. The **gated
# PixelCNN** (van den Oord, Kalchbrenner, Vinyals et al. 2016) splits the network into a vertical stack
# (everything in the rows above) and a horizontal stack (to the left in the current row), which
# removes the blind spot, and replaces ReLUs with gates $\tanh(W_f * x) \odot \sigma(W_g * x)$.


# %%
class PixelCNNProgram(PyroModule):
    def __init__(self, image_shape, **settings):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = PixelCNNNet(self.image_shape, **settings)

    @pyro_method
    def model(self, x):
        images = x.reshape(x.shape[0], *self.image_shape)  # (N, H, W)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", PixelCNN(self.net), obs=images)


# %% [markdown]
# ## The autoregressive property, checked through gradients
# If conditional $i$ ignores $x_j$ for $j \ge i$, then $\partial\, \mathrm{logit}_i / \partial x_j = 0$
# for all $j \ge i$, whatever the weights. We check it on freshly initialised networks: the Jacobian of
# the logits is strictly lower triangular for NADE, and for PixelCNN we colour the pixels whose value
# moves the logit of the pixel marked with a red dot.


# %%
def dependencies(net, levels, out_index):
    """|d logit[out_index] / d x| as a boolean map, through the network's float relaxation."""
    inp = net.relax(levels).requires_grad_()
    net(inp)[(0, *out_index)].backward()
    return inp.grad[0].abs() > 0


torch.manual_seed(0)
nade_demo = NADENet(16, 32)
jacobian = torch.stack([dependencies(nade_demo, torch.zeros(1, 16), (i,)) for i in range(16)])
print("NADE: any dependence on x_j for j >= i?", bool(jacobian.triu().any()))

size, centre = 11, (5, 5)
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
axes[0].imshow(jacobian, cmap="Greys")
axes[0].set(title="NADE: logit i depends on x_j", xlabel="input j", ylabel="logit i")
for ax, gated in zip(axes[1:], (False, True), strict=True):
    net = PixelCNNNet((size, size), channels=8, layers=5, gated=gated, first_kernel_size=3)
    seen = dependencies(net, torch.zeros(1, size, size), centre)
    earlier = torch.arange(size * size).reshape(size, size) < centre[0] * size + centre[1]
    print(
        f"{'gated' if gated else 'original'} PixelCNN: sees a later pixel? {bool((seen & ~earlier).any())};"
        f" earlier pixels it misses: {int((earlier & ~seen).sum())} of {int(earlier.sum())}"
    )
    ax.imshow(seen.float() + 0.3 * (earlier & ~seen).float(), cmap="Greys", vmin=0, vmax=1)
    ax.plot(centre[1], centre[0], "ro")
    ax.set(
        title=f"{'gated' if gated else 'original'} PixelCNN: receptive field", xlabel="column", ylabel="row"
    )
plt.show()

# %% [markdown]
# Look for: black cells only below the diagonal for NADE; for the original PixelCNN a light-grey
# wedge above and to the right of the red dot (earlier pixels it cannot see: the blind spot), which
# the gated version fills in. Neither sees the red pixel itself or anything after it.

# %% [markdown]
# ## Exact normalisation, by brute force
# With $D = 9$ binary variables there are $2^9 = 512$ configurations, few enough to sum
# $p(x)$ over all of them. For every model the sum must be 1 up to rounding, even untrained.

# %%
torch.manual_seed(0)
states = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * 9)  # (512, 9): every binary vector
tiny = {
    "FVSBN": FVSBN(torch.randn(9, 9), torch.randn(9)),
    "NADE": NADE(NADENet(9, 16)),
    "MADE, 4 orderings": MADE(MADENet(9, [32], num_masks=4).eval()),
    "PixelCNN 3x3, original": PixelCNN(PixelCNNNet((3, 3), channels=8, layers=3, gated=False)),
    "PixelCNN 3x3, gated": PixelCNN(PixelCNNNet((3, 3), channels=8, layers=3)),
}
with torch.no_grad():
    for name, d in tiny.items():
        value = states.reshape(512, 3, 3) if name.startswith("PixelCNN") else states
        print(f"{name:24s} sum over 2^9 states of p(x) = {d.log_prob(value).exp().sum().item():.6f}")

# %% [markdown]
# ## Reading the program's graph
# Every random choice is observed, so `pplgen.inspect` classifies the program as `exact`, and
# `pplgen.fit` trains it by maximum likelihood with no guide.

# %%
programs = {
    "FVSBN": FVSBNProgram(D),
    "NADE": NADEProgram(D, hidden=100),
    "MADE": MADEProgram(D, hidden=[200], num_masks=8),
    "PixelCNN": PixelCNNProgram((8, 8), channels=32 if smoke else 64, layers=4 if smoke else 6),
}
graph = pplgen.inspect(programs["PixelCNN"].model, x[:8])
print(graph.graph["family"], "-", graph.graph["reason"])
pplgen.draw(graph)
plt.show()

# %% [markdown]
# ## Fitting by maximum likelihood
# The loss is the exact negative log-likelihood per digit; `fit` holds out 10 % for validation.

# %%
epochs = 2 if smoke else 100
lrs = {"FVSBN": 1e-2, "NADE": 3e-3, "MADE": 1e-3, "PixelCNN": 1e-3}
results = {}
for name, program in programs.items():
    start = time.perf_counter()
    results[name] = pplgen.fit(
        program.model, x, epochs=epochs, lr=lrs[name], batch_size=64, seed=0, device=device, patience=10
    )
    print(f"{name}: {len(results[name].history)} epochs in {time.perf_counter() - start:.1f} s")

fig, ax = plt.subplots(figsize=(7, 4))
for name, result in results.items():
    ax.plot([row["val_nll"] for row in result.history], label=name)
ax.set(xlabel="epoch", ylabel="validation nats per digit", title="Exact validation NLL while training")
ax.legend()
plt.show()

# %% [markdown]
# ## Exact test log-likelihoods
# `pplgen.log_likelihood` returns $\log p(x)$ per test digit, computed exactly in one pass.

# %%
print(f"{'model':10s} {'nats/digit':>11s} {'bits/dim':>9s}")
for name, result in results.items():
    nats = -pplgen.log_likelihood(result, x_test).mean().item()
    print(f"{name:10s} {nats:11.2f} {pplgen.bits_per_dim(result, x_test):9.3f}")
print(f"{'coin flip':10s} {D * math.log(2):11.2f} {1.0:9.3f}")

# %% [markdown]
# Every row is exact, so the rows can be compared directly: lower is better, and the coin flip is
# the baseline every model must beat. The smoke run stops after a couple of epochs, far from
# convergence, so its ranking means little; the full setting trains each model until its validation
# NLL stops improving. Samples show what the numbers mean: look for strokes that continue from one row
# into the next, rather than speckled noise.

# %%
fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4))
for ax, (name, result) in zip(axes, results.items(), strict=True):
    pplgen.plot.image_grid(pplgen.sample(result, 36), (8, 8), ax=ax)
    ax.set_title(f"{name} samples")
plt.show()

# %% [markdown]
# ## Why sampling is slow, and how caching helps
# Evaluating $\log p(x)$ needs one pass, because all of $x$ is known. **Sampling** needs $x_{<i}$ before
# it can draw $x_i$, so the naive way runs the full network $D$ times, once per pixel: $O(D)$ passes
# of $O(D)$ work each. But most of that work repeats: a PixelCNN activation at a pixel depends only on
# earlier pixels, so once computed it never changes (Ramachandran et al. 2017), and NADE's running sum
# $a_i$ only gains one column per step. pplgen's networks keep those caches (`sample()`), and
# `sample(naive=True)` re-runs the whole network per pixel. Both draw all their uniforms up front, so
# from the same seed they must return identical samples.


# %%
def timed_sample(d, n, naive):
    torch.manual_seed(1)
    start = time.perf_counter()
    with torch.no_grad():
        values = d.sample((n,), naive=naive)
    return values, time.perf_counter() - start


print(f"{'model':10s} {'cached s':>9s} {'naive s':>9s} {'speed-up':>9s}  identical")
for name, dist_class in (("NADE", NADE), ("PixelCNN", PixelCNN)):
    d = dist_class(programs[name].net.eval())
    cached, fast = timed_sample(d, 64, naive=False)
    naive, slow = timed_sample(d, 64, naive=True)
    print(f"{name:10s} {fast:9.3f} {slow:9.3f} {slow / fast:8.1f}x  {torch.equal(cached, naive)}")

# %% [markdown]
# MADE cannot cache this way: its hidden units mix all earlier inputs through a dense masked layer,
# so each new coordinate changes every unit, and generation is $D$ full passes. The same trade-off
# returns for sequences: WaveNet keeps a queue per dilated layer and a Transformer keeps its keys and
# values (tutorial 08).

# %% [markdown]
# ## Binarized MNIST, when the data file is present
# The same NADE program on 28x28 binarized MNIST (Larochelle & Murray 2011), $D = 784$. The data file
# is read from `PPLGEN_DATA`; when it is missing this section says so and is skipped. The NADE paper
# reports about 88.9 test nats with 500 hidden units after long training; the smoke setting trains
# on a small subset for one epoch and gets nowhere near it (its samples are noise).

# %%
try:
    mnist = pplgen.data.load("binarized_mnist")
except pplgen.errors.DataFileError as error:
    mnist = None
    print("binarized MNIST is not available, so this section is skipped:", error)

if mnist is not None:
    mnist_x = mnist.x[torch.randperm(len(mnist.x))[:1000]] if smoke else mnist.x
    mnist_test = pplgen.data.load("binarized_mnist", split="test").x[: 500 if smoke else None]
    mnist_nade = NADEProgram(784, hidden=50 if smoke else 500)
    mnist_fit = pplgen.fit(
        mnist_nade.model, mnist_x, epochs=1 if smoke else 50, lr=1e-3, batch_size=100, seed=0, device=device
    )
    nats = -pplgen.log_likelihood(mnist_fit, mnist_test, max_rows=256).mean().item()
    print(
        f"NADE on binarized MNIST ({len(mnist_x)} training images): {nats:.1f} test nats, "
        f"{nats / (784 * math.log(2)):.3f} bits/dim"
    )
    fig = pplgen.plot.image_grid(pplgen.sample(mnist_fit, 25), (28, 28))
    fig.suptitle("NADE samples, binarized MNIST")
    plt.show()

# %% [markdown]
# ## What to take away
# * The chain rule makes any ordering of the variables an exact model; the network only has to keep
#   conditional $i$ blind to $x_{\ge i}$ (triangular weights, masks, masked convolutions).
# * Exactness is checkable: the probabilities of all $2^D$ states sum to one, and the gradients of
#   logit $i$ with respect to $x_{\ge i}$ vanish.
# * Likelihood is one pass; sampling is $D$ sequential steps, made affordable by caching what earlier
#   steps already computed.
