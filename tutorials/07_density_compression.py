# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Density, anomalies and compression
#
# A model with a likelihood gives every data point a number, $-\log p(x)$. This tutorial reads that
# number two ways. As an **anomaly score**: points the model finds improbable are the odd ones out. And
# as a **code length**: by Shannon's source-coding theorem, $-\log_2 p(x)$ bits is what it costs to
# store $x$ with the model, and an entropy coder (rANS, Duda 2013) turns the model into a real
# compressor that gets within a few bits of it. Latent variable models compress too, by *bits back*
# (Frey & Hinton 1997; Townsend, Bird & Barber 2019). A GAN gives no such number, and we will see why
# its critic is not a substitute.

# %%
import bz2
import gzip
import lzma
import math
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch

import pplgen

smoke = "CI" in os.environ  # a few epochs in the tests; full length otherwise (a few minutes on a CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## Data: nine digits are normal, one is the anomaly
#
# We use scikit-learn's handwritten digits, binarised to 8 x 8 black-and-white pictures (embedded in
# pplgen, so always available). To make anomalies we can check, one class is **held out**: the models
# train on the other nine, and at test time the held-out digit plays the anomaly, a *leave one class
# out* protocol (as `benchmarks/anomaly.py` runs it for every class).

# %%
held_out = 7  # the digit the models never see in training
train, test = pplgen.data.load("digits"), pplgen.data.load("digits", split="test")
x_train = train.x[train.y != held_out]
x_normal, x_anomalous = test.x[test.y != held_out], test.x[test.y == held_out]
D = x_train.shape[1]  # 64 pixels
print(f"training digits (nine classes): {len(x_train)}")
print(f"test digits: {len(x_normal)} normal, {len(x_anomalous)} anomalous (the digit {held_out})")

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
pplgen.plot.image_grid(x_normal[:32], train.image_shape, ax=axes[0], ncols=16)
axes[0].set_title("normal test digits")
pplgen.plot.image_grid(x_anomalous[:32], train.image_shape, ax=axes[1], ncols=16)
axes[1].set_title(f"anomalous test digits (the held-out {held_out})")
plt.show()

# %% [markdown]
# ## Two models with a likelihood, written as Pyro programs
#
# **An exact model.** NADE (Larochelle & Murray 2011) factorises the joint by the chain rule,
# $p(x) = \prod_{i=1}^{D} p(x_i \mid x_{<i})$, each conditional a Bernoulli whose logit a network
# computes from the pixels before it. $\log p(x)$ is then exact, one network pass per point.
# `pplgen.distributions.NADE` is that distribution at a sample site; the network `pplgen.nn.NADENet`
# lives in our module.


# %%
class NADEDigits(pyro.nn.PyroModule):
    def __init__(self, dim=64, hidden=100):
        super().__init__()
        self.net = pplgen.nn.NADENet(dim=dim, hidden=hidden)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", pplgen.distributions.NADE(self.net), obs=x)


# %% [markdown]
# **A latent model.** A variational autoencoder, $p(x, z) = \mathcal{N}(z; 0, I)\,\prod_i
# \mathrm{Bernoulli}(x_i; \sigma(f(z))_i)$, with an encoder guide $q(z \mid x) = \mathcal{N}(\mu(x),
# \mathrm{diag}\,\sigma(x)^2)$. Its likelihood $p(x) = \int p(x \mid z)\,p(z)\,dz$ has no closed form;
# pplgen estimates it by importance sampling with the guide,
# $\log p(x) \approx \log \frac1K \sum_k p(x, z_k)/q(z_k \mid x)$, $z_k \sim q(z \mid x)$ (a lower
# bound in expectation, Burda et al. 2016).


# %%
class VAE(pyro.nn.PyroModule):
    def __init__(self, z_dim=8, hidden=256):
        super().__init__()
        self.z_dim = z_dim
        self.decoder = pplgen.nn.MLP([z_dim, hidden, hidden, D])  # z -> 64 Bernoulli logits
        self.encoder = pplgen.nn.MLP([D, hidden, hidden, 2 * z_dim])  # x -> (mu, log sigma)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = self.encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


nade, vae = NADEDigits(), VAE()
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, (name, program) in zip(axes, {"NADE": nade.model, "VAE": vae.model}.items(), strict=True):
    graph = pplgen.inspect(program, x_train[:8])
    print(f"{name}: {graph.graph['family']} - {graph.graph['reason']}")
    pplgen.draw(graph, ax=ax)
    ax.set_title(name)
plt.show()

# %% [markdown]
# The NADE program has one observed site and no latent: family *exact*, trained by maximum likelihood.
# The VAE has a latent `z` inside the data plate: family *latent*, trained by amortised SVI on the ELBO.

# %%
epochs = {"nade": 2, "vae": 2} if smoke else {"nade": 150, "vae": 150}
common = {"lr": 3e-3, "batch_size": 64, "seed": 0, "device": device, "progress": False}
nade_fit = pplgen.fit(nade.model, x_train, epochs=epochs["nade"], patience=20, **common)
vae_fit = pplgen.fit(vae.model, x_train, vae.guide, epochs=epochs["vae"], patience=20, **common)
for name, result in {"NADE": nade_fit, "VAE": vae_fit}.items():
    print(f"{name}: {len(result.history)} epochs, last row {result.history[-1]}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
pplgen.plot.training_curves(nade_fit.history, ax=axes[0], keys=["nll", "val_nll"])
axes[0].set_title("NADE: negative log-likelihood (nats)")
pplgen.plot.training_curves(vae_fit.history, ax=axes[1], keys=["loss", "val_loss"])
axes[1].set_title("VAE: negative ELBO (nats)")
plt.show()

# %% [markdown]
# ## A likelihood as an anomaly score
#
# The score of a point is $s(x) = -\log p(x)$: in nats, or in **bits per dimension**
# $-\log_2 p(x) / D$, which compares data of different sizes. `pplgen.anomaly_scores` computes it for
# any fitted model and names the estimator (exact for NADE, importance-sampled for the VAE).
#
# How well do scores separate two sets? The **AUROC** is the probability that a random anomalous point
# scores higher than a random normal one (ties count half; Hanley & McNeil 1982): 1 separates them
# perfectly, 0.5 is chance. It needs no threshold, and `pplgen.evaluate.auroc` computes it from ranks.

# %%
num_samples = 20 if smoke else 500  # importance samples per point for the VAE
scores = {}
for name, result in {"NADE": nade_fit, "VAE": vae_fit}.items():
    normal = pplgen.anomaly_scores(result, x_normal, num_samples=num_samples)
    anomalous = pplgen.anomaly_scores(result, x_anomalous, num_samples=num_samples)
    scores[name] = (normal, anomalous)
    print(
        f"{name} ({normal.estimator}): normal {normal.bits_per_dim.mean():.3f} bits/pixel, "
        f"anomalous {anomalous.bits_per_dim.mean():.3f} bits/pixel, "
        f"AUROC {pplgen.evaluate.auroc(normal, anomalous):.3f}"
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for ax, (name, (normal, anomalous)) in zip(axes, scores.items(), strict=True):
    both = torch.cat([normal.bits_per_dim, anomalous.bits_per_dim])
    bins = np.linspace(float(both.min()), float(both.max()), 40)
    ax.hist(normal.bits_per_dim, bins=bins, alpha=0.6, density=True, label="normal (nine digits)")
    ax.hist(anomalous.bits_per_dim, bins=bins, alpha=0.6, density=True, label=f"anomalous ({held_out}s)")
    ax.set_xlabel(r"anomaly score $-\log_2 p(x) / D$ (bits per pixel)")
    ax.set_ylabel("density")
    ax.set_title(f"{name}: AUROC {pplgen.evaluate.auroc(normal, anomalous):.3f}")
    ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# What to look for: the held-out digits' histogram should sit to the right (more bits, less probable).
# The two histograms overlap, so a threshold would make errors both ways; the AUROC sums that up.
#
# Now the test digits the NADE finds *most* anomalous, out of all of them, with their labels.

# %%
x_all = torch.cat([x_normal, x_anomalous])
labels_all = torch.cat([test.y[test.y != held_out], test.y[test.y == held_out]])
all_scores = torch.cat([s.bits_per_dim for s in scores["NADE"]])
top = all_scores.argsort(descending=True)[:16]
pplgen.plot.image_grid(x_all[top], train.image_shape, ncols=16)
plt.title("the 16 test digits with the highest NADE score, most anomalous first")
plt.show()
print("their labels:", labels_all[top].tolist())
print(f"held-out {held_out}s among them: {(labels_all[top] == held_out).sum().item()} of 16")

# %% [markdown]
# Look at the labels: held-out digits, and normal digits written oddly (thick, cut off, or shifted),
# which *are* anomalies to the model; the better trained the model, the more of the top are held out.
# A likelihood scores how surprising a point is, not which class it belongs to. This is also why
# likelihoods can fail as novelty detectors: a model can give *higher* density to a whole data set it
# never saw, when that data set is simpler (Nalisnick et al. 2019), so always check a score with
# `auroc` against a plain baseline.

# %% [markdown]
# ## Why a GAN's critic is not a density
#
# A GAN (Goodfellow et al. 2014) fits a sampler $x = G(z)$. Its discriminator $D(x)$ is trained to
# tell real points from generated ones; at the optimum of the game, for a fixed generator,
# $D^*(x) = \frac{p_{\text{data}}(x)}{p_{\text{data}}(x) + p_G(x)}$. So the critic's logit estimates
# the *ratio* $\log p_{\text{data}}(x) - \log p_G(x)$, not $\log p(x)$: it is unnormalised, it depends
# on how far the generator got, and it only has to be right where data and samples lie. Minus the
# critic's logit can still rank points (Schlegl et al. 2017), so `anomaly_scores` returns it for an
# implicit model, but it has no unit: asking for nats or bits raises an error. A small GAN shows it.


# %%
class GAN(pyro.nn.PyroModule):
    def __init__(self, z_dim=16, hidden=256):
        super().__init__()
        self.z_dim = z_dim
        self.generator = torch.nn.Sequential(pplgen.nn.MLP([z_dim, hidden, hidden, D]), torch.nn.Sigmoid())

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(self.generator(z), event_dim=1), obs=x)


gan = GAN()
gan_fit = pplgen.fit(
    gan.model,
    x_train,
    epochs=2 if smoke else 60,
    lr=2e-4,
    batch_size=64,
    valid_fraction=0,
    seed=0,
    device=device,
    progress=False,
    adversarial=pplgen.AdversarialSettings(pack=1),  # the critic judges one point at a time
)
gan_normal, gan_anomalous = (pplgen.anomaly_scores(gan_fit, x) for x in (x_normal, x_anomalous))
print(f"GAN ({gan_normal.estimator}): AUROC {pplgen.evaluate.auroc(gan_normal, gan_anomalous):.3f}")
try:
    print(gan_normal.bits_per_dim)
except pplgen.errors.ImplicitLikelihoodError as error:
    print("asking the GAN for bits per pixel:", error)

# %% [markdown]
# ## Shannon: a probability is a code length
#
# Suppose a sender and a receiver agree on a model $p$ and the sender must transmit $x$ in bits.
# Shannon's **source-coding theorem** (Shannon 1948) says that no lossless code can beat an average of
# $H(p) = -\sum_x p(x) \log_2 p(x)$ bits when $x \sim p$, and that codes exist which spend about
# $\ell(x) = -\log_2 p(x)$ bits on $x$ and so come within a bit of $H(p)$. (The Kraft inequality
# $\sum_x 2^{-\ell(x)} \le 1$ makes code lengths and probabilities two views of one thing.)
#
# When the data come from $p_{\text{data}}$ but we code with a model $p_\theta$, the average length is
# the cross-entropy:
#
# $$\mathbb{E}_{p_{\text{data}}}[-\log_2 p_\theta(x)] = H(p_{\text{data}}) +
#   \mathrm{KL}(p_{\text{data}} \,\|\, p_\theta) \text{ bits}.$$
#
# The first term is the data's own information, the second is what the model's mistakes cost. So
# **maximum likelihood is minimum code length**: the test negative log-likelihood in bits per pixel,
# the figure likelihood models report, is the size of the file they would write. The anomaly score
# above was a code length all along: anomalous digits are the ones that cost many bits.

# %% [markdown]
# ## rANS: turning probabilities into bits
#
# An entropy coder achieves $-\log_2 p(x)$ up to a small overhead. Asymmetric numeral systems (Duda
# 2013) keep the message as one big integer state $h$. With probabilities quantised to
# $p(s) \approx f_s / 2^n$ (frequencies $f_s$ summing to $2^n$, cumulative starts $c_s$), **pushing**
# a symbol $s$ maps
#
# $$h \;\mapsto\; \Big\lfloor \frac{h}{f_s} \Big\rfloor\, 2^n + (h \bmod f_s) + c_s,$$
#
# which multiplies $h$ by about $2^n / f_s$, so the message grows by $\log_2(2^n/f_s) \approx
# -\log_2 p(s)$ bits. **Popping** reads $c = h \bmod 2^n$, finds the $s$ with $c_s \le c < c_s + f_s$,
# and inverts the map. It is a *stack*: the last symbol pushed comes out first. pplgen's
# `pplgen.codec.Message` keeps a 64-bit head per lane and spills 32-bit words to a tail (Giesen's
# layout), so it codes one symbol per lane with one numpy operation.
#
# By hand first: 2,000 flips of a coin with $P(\text{heads}) = 0.1$, coded with 16-bit frequencies.
# Shannon says about $2000 \cdot H(0.1)$ bits; a byte per flip would be 16,000 bits.

# %%
precision, p_heads, flips = 16, 0.1, 2000
coin = torch.bernoulli(torch.full((flips,), p_heads), generator=torch.Generator().manual_seed(0)).long()
freq_heads = round(p_heads * 2**precision)
freqs = {0: 2**precision - freq_heads, 1: freq_heads}  # tails first, then heads: they sum to 2^16
starts = {0: 0, 1: freqs[0]}

message = pplgen.codec.Message(lanes=1)
for s in reversed(coin.tolist()):  # a stack: push the last flip first, so the first pops out first
    message.push(np.array([starts[s]]), np.array([freqs[s]]), precision)
tail, heads, borrowed = message.to_words()
coded_bits = 32 * len(tail) + 64 * len(heads)


def lookup(cf, rows):  # which symbol's interval holds each cumulative frequency, and its start and size
    symbol = (cf >= freqs[0]).astype(np.int64)
    return symbol, np.where(symbol == 1, starts[1], 0), np.where(symbol == 1, freqs[1], freqs[0])


decoded = [int(message.pop(1, precision, lookup)[0]) for _ in range(flips)]
entropy = -(p_heads * math.log2(p_heads) + (1 - p_heads) * math.log2(1 - p_heads))
print(f"message: {coded_bits} bits (tail {32 * len(tail)}, head 64); Shannon: {flips * entropy:.0f} bits")
print(f"-log2 p of these very flips: {-sum(math.log2(p_heads if s else 1 - p_heads) for s in coin):.0f} bits")
print("decoded exactly:", decoded == coin.tolist(), "| message back to its start:", message.is_initial())

# %% [markdown]
# The message is within a few dozen bits (the final head, and the last partly filled word) of the
# flips' own information $-\log_2 p$. Coding an image is the same with a different table per pixel.
#
# **Along the generation path.** For NADE the table of pixel $i$ is its conditional
# $p(x_i \mid x_{<i})$, so the decoder must know $x_{<i}$ before it can decode $x_i$: it runs the
# model's own sampling path, one pixel at a time, feeding back each decoded pixel. The coder runs the
# same path with the true pixels, so both ends compute every table with the same floating-point
# arithmetic (a one-pass evaluation might differ in the last bit, and a single frequency off by one
# breaks decoding). Each pixel then costs $-\log_2 p(x_i \mid x_{<i})$ bits plus a tiny quantisation
# loss, and an image costs its $-\log_2 p(x)$.

# %% [markdown]
# ## Real bytes from the NADE
#
# `pplgen.codec.compress(result, x)` does all of this and returns bytes: a short JSON header (shape,
# settings, a fingerprint of the model's parameters, a checksum of the data), then the rANS words. We
# write them to a file, read the file back, decode with the same fitted model, and check that every
# pixel came back.

# %%
workdir = tempfile.mkdtemp(prefix="pplgen-codec-")
path = os.path.join(workdir, "digits.pplz")
with open(path, "wb") as f:
    f.write(pplgen.codec.compress(nade_fit, x_normal, lanes=1))  # one lane: a small data set
with open(path, "rb") as f:
    stored = f.read()
info = pplgen.codec.describe(stored)
print({k: info[k] for k in ("count", "shape", "family", "lanes", "header_bytes", "message_bytes")})
nade_back = pplgen.codec.decompress(nade_fit, stored)
print("round trip exact:", torch.equal(nade_back, x_normal), f"| file: {os.path.getsize(path)} bytes")

bits = {}  # bits per pixel of each way of storing the normal test digits
bits["NADE: -log2 p(x)"] = pplgen.bits_per_dim(nade_fit, x_normal)
bits["NADE + rANS: message"] = 8 * info["message_bytes"] / x_normal.numel()
bits["NADE + rANS: file"] = 8 * len(stored) / x_normal.numel()
for key in ("NADE: -log2 p(x)", "NADE + rANS: message", "NADE + rANS: file"):
    print(f"{key:22s} {bits[key]:.4f} bits/pixel")

# %% [markdown]
# The message is the model's $-\log_2 p$ plus a few bits of quantisation and 64 bits for the head of
# each lane (one here). The file adds the header, a few hundred bytes whatever the data: it weighs
# heavily on a few hundred tiny digits, and vanishes on thousands of large images. The header also
# guards the data: bytes decoded with another model, or damaged, raise `pplgen.errors.CodecError`
# instead of returning wrong pixels.

# %%
damaged = bytearray(stored)
damaged[-20] ^= 1  # flip one bit of the message
try:
    pplgen.codec.decompress(nade_fit, bytes(damaged))
except pplgen.errors.CodecError as error:
    print("one flipped bit:", error)

# %% [markdown]
# ## Bits back with the VAE (BB-ANS)
#
# A latent model gives $p(x \mid z)$ and $p(z)$, not $p(x)$. Coding $z$ and then $x$ given $z$ would
# cost $-\log_2 p(z) - \log_2 p(x \mid z)$ bits, more than $-\log_2 p(x)$, because $z$ is extra
# information the receiver never asked for. **Bits back** (Frey & Hinton 1997; Townsend, Bird & Barber
# 2019) gets that back with a stack coder:
#
# 1. *pop* $z$ from the message with $q(z \mid x)$: decoding bits that are already there *draws*
#    $z \sim q(z \mid x)$ and shortens the message by $-\log_2 q(z \mid x)$ bits;
# 2. *push* $x$ with $p(x \mid z)$, then $z$ with $p(z)$.
#
# The net cost is $-\log_2 p(x \mid z) - \log_2 p(z) + \log_2 q(z \mid x)$, whose mean over $q$ is the
# **negative ELBO** in bits. The decoder runs the steps backwards: pop $z$ with $p(z)$, pop $x$ with
# $p(x \mid z)$, and push $z$ with $q(z \mid x)$, which gives the borrowed bits back. Continuous $z$ is
# cut into $2^b$ buckets of equal prior mass per dimension. The first point of each lane has no bits to
# borrow yet and pays for its latents in full, so on a small data set we use few lanes.
#
# To compare, we estimate the VAE's negative ELBO by averaging single-draw importance weights: with
# $K = 1$, $\log p(x, z)/q(z \mid x)$ for $z \sim q$ is an unbiased estimate of the ELBO.

# %%
lanes = 4 if smoke else 1  # a lane codes one point per step: one lane costs least, four run faster
vae_bytes = pplgen.codec.compress(vae_fit, x_normal, lanes=lanes)
vae_back = pplgen.codec.decompress(vae_fit, vae_bytes)
print("VAE round trip exact:", torch.equal(vae_back, x_normal), f"| {len(vae_bytes)} bytes")

draws = 20 if smoke else 200
elbo = torch.stack([pplgen.log_likelihood(vae_fit, x_normal, num_samples=1) for _ in range(draws)]).mean()
bits["VAE: -ELBO"] = -elbo.item() / (D * math.log(2))
bits["VAE: -log2 p(x) (IS)"] = pplgen.bits_per_dim(vae_fit, x_normal, num_samples=num_samples)
bits["VAE + bits back: message"] = 8 * pplgen.codec.describe(vae_bytes)["message_bytes"] / x_normal.numel()
bits["VAE + bits back: file"] = 8 * len(vae_bytes) / x_normal.numel()
for key in ("VAE: -log2 p(x) (IS)", "VAE: -ELBO", "VAE + bits back: message", "VAE + bits back: file"):
    print(f"{key:24s} {bits[key]:.4f} bits/pixel")

# %% [markdown]
# The bits-back message should land near the negative ELBO, not near the importance-sampled
# $-\log_2 p(x)$: the gap between the two is $\mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))$, the
# guide's error, and bits back pays it. A better encoder makes a smaller file.

# %% [markdown]
# ## Against general-purpose compressors
#
# gzip (LZ77 and Huffman), bz2 (Burrows-Wheeler) and lzma (LZ77 with a range coder) know nothing about
# digits; they look for repeated byte strings. We give each the same test digits in two forms, one byte
# per pixel and eight pixels packed per byte, and keep the smaller. Their files carry headers too.

# %%
pixels = x_normal.to(torch.uint8).numpy()
forms = {"bytes": pixels.tobytes(), "packed": np.packbits(pixels, axis=1).tobytes()}
compressors = {
    "gzip": lambda b: gzip.compress(b, 9),
    "bz2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}
for name, squeeze in compressors.items():
    sizes = {form: len(squeeze(data)) for form, data in forms.items()}
    best = min(sizes, key=sizes.get)
    bits[name] = 8 * sizes[best] / x_normal.numel()
    print(f"{name}: {sizes} bytes; best {best}: {bits[name]:.4f} bits/pixel")
bits["raw (1 bit per pixel)"] = 1.0

order = sorted(bits, key=bits.get)
colours = ["tab:blue" if "NADE" in k else "tab:orange" if "VAE" in k else "tab:gray" for k in order]
fig, ax = plt.subplots(figsize=(9, 4))
ax.barh(order, [bits[k] for k in order], color=colours)
for i, k in enumerate(order):
    ax.text(bits[k], i, f" {bits[k]:.3f}", va="center", fontsize="small")
ax.set_xlabel("bits per pixel (lower is smaller)")
ax.set_title(f"storing {len(x_normal)} normal test digits: model figures and real files")
ax.set_xlim(0, 1.15 * max(bits.values()))
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for: each model's message (blue: NADE, orange: VAE) sits just above the figure it codes
# towards, and its file a header above that. Compare the messages with gzip, bz2 and lzma: a model
# that knows what a digit looks like needs fewer bits than one that hunts for repeats, and the better
# it is trained the fewer (the smoke setting of this notebook, in the tests, trains for two epochs).
# The same holds at scale: `benchmarks/codec.py` codes binarized MNIST's test set with a VAE and with
# a PixelCNN beside bz2, lzma and gzip.
#
# Coding cost and anomaly score are one number. The held-out digits, coded with the same NADE, cost
# more:

# %%
odd_bytes = pplgen.codec.compress(nade_fit, x_anomalous, lanes=1)
assert torch.equal(pplgen.codec.decompress(nade_fit, odd_bytes), x_anomalous)
odd_message = 8 * pplgen.codec.describe(odd_bytes)["message_bytes"] / x_anomalous.numel()
print(f"normal digits: message {bits['NADE + rANS: message']:.4f} bits/pixel, "
      f"-log2 p {bits['NADE: -log2 p(x)']:.4f}")  # fmt: skip
print(f"held-out {held_out}s: message {odd_message:.4f} bits/pixel, "
      f"-log2 p {pplgen.bits_per_dim(nade_fit, x_anomalous):.4f}")  # fmt: skip

# %% [markdown]
# ## Summary
#
# * $-\log p(x)$ is both an anomaly score and a code length (Shannon 1948); check a score with the
#   AUROC against held-out anomalies, and remember that likelihoods can rank unfamiliar but simple data
#   as typical (Nalisnick et al. 2019).
# * A GAN's critic estimates a density *ratio* against its own generator; it can rank points but has
#   no unit, so it is neither a likelihood nor a code length.
# * rANS (Duda 2013) turns an exact model's conditionals into bytes within a few bits of
#   $-\log_2 p(x)$; bits back (Townsend et al. 2019) does the same for a VAE at the cost of its
#   negative ELBO. `pplgen.codec.compress` / `decompress` do both, and check the round trip.
