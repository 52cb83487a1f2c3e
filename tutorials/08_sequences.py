# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Sequences: WaveNet on spoken digits and a character Transformer on Shakespeare
#
# Audio and text are sequences, and the chain rule models them exactly:
#
# $$p(x_{1:T} \mid c) = \prod_{t=1}^{T} p(x_t \mid x_{<t}, c).$$
#
# Two architectures compute all $T$ conditionals in one pass without letting step $t$ see $x_{\ge t}$:
# **WaveNet** (van den Oord et al. 2016), a stack of dilated causal convolutions over raw audio, and
# the **Transformer** (Vaswani et al. 2017), causal self-attention over tokens. Both are `exact`
# programs in pplgen: maximum likelihood, exact log-likelihood, and generation one step at a time, which
# caching makes fast.

# %%
import codecs
import collections
import contextlib
import functools
import io
import itertools
import json
import math
import os
import re
import string
import textwrap
import time

import matplotlib.pyplot as plt
import pyro
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method

import pplgen
from pplgen.distributions import SequenceLM, WaveNet, mu_law_decode, mu_law_encode
from pplgen.nn import TransformerConfig, TransformerNet, WaveNetNet

smoke = "CI" in os.environ  # a few steps in the tests; full length otherwise (meant for a GPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## Spoken digits, or a stand-in
# The Free Spoken Digit Dataset (Jackson et al. 2018) holds recordings of the digits 0-9 at 8 kHz.
# It is read from `PPLGEN_DATA`; when the file is absent we use an honest stand-in, synthetic tones
# with one pitch per digit, so that the rest of the tutorial still runs and means something.

# %%
rate = 8000
length = 2000 if smoke else 4000  # samples per clip: a quarter or half of a second


def synthetic_tones(num_per_digit, generator):
    """Stand-in audio: digit d is a decaying tone at 200 + 60 d Hz with its octave, jittered, plus noise."""
    t = torch.arange(length) / rate
    digits = torch.arange(10).repeat_interleave(num_per_digit)
    pitch = (200 + 60 * digits) * (1 + 0.03 * torch.randn(len(digits), generator=generator))
    phase = 2 * math.pi * torch.rand(len(digits), 1, generator=generator)
    tone = torch.sin(2 * math.pi * pitch[:, None] * t + phase) + 0.4 * torch.sin(
        4 * math.pi * pitch[:, None] * t
    )
    envelope = torch.exp(-3 * t) * (1 - torch.exp(-60 * t))
    noise = 0.01 * torch.randn(len(digits), length, generator=generator)
    return (0.5 * tone * envelope + noise).clamp(-1, 1), digits


try:
    fsdd = pplgen.data.load("fsdd", length=length)
    fsdd_test = pplgen.data.load("fsdd", split="test", length=length)
    audio_source = "FSDD spoken digits"
    keep = torch.randperm(len(fsdd.x))[: 160 if smoke else None]
    audio, labels = fsdd.x[keep], fsdd.y[keep]
    every = torch.arange(0, len(fsdd_test.x), 6 if smoke else 1)  # the test split is sorted by digit
    audio_test, labels_test = fsdd_test.x[every], fsdd_test.y[every]
except pplgen.errors.DataFileError:
    audio_source = "synthetic tones (a stand-in: the FSDD file is not in PPLGEN_DATA)"
    generator = torch.Generator().manual_seed(0)
    audio, labels = synthetic_tones(16 if smoke else 100, generator)
    audio_test, labels_test = synthetic_tones(5 if smoke else 20, generator)
print(f"audio: {audio_source}; {len(audio)} training and {len(audio_test)} test clips of {length} samples")

# %% [markdown]
# ## μ-law quantisation
# WaveNet turns regression into classification: each sample becomes one of $K = 256$ levels, and each
# conditional is a softmax over them. Uniform 8-bit steps would be too coarse for quiet sounds, so the
# samples are first companded,
#
# $$f(x) = \operatorname{sign}(x)\, \frac{\ln(1 + \mu |x|)}{\ln(1 + \mu)}, \qquad \mu = K - 1,$$
#
# and $f(x) \in [-1, 1]$ is rounded to $K$ even steps: fine steps near zero, coarse ones for loud
# samples. We compare the signal-to-noise ratio of both quantisers on the training clips: μ-law wins
# when most samples are quiet, as in speech, but need not on loud, steady tones.

# %%
grid = torch.linspace(-1, 1, 401)
levels = mu_law_encode(audio)
mu_error = mu_law_decode(levels) - audio
uniform_error = ((audio + 1) * 127.5).round() / 127.5 - 1 - audio
power = audio.pow(2).mean()
for name, error in (("μ-law", mu_error), ("uniform", uniform_error)):
    print(f"{name:8s} 256 levels: SNR {10 * math.log10(power / error.pow(2).mean()):.1f} dB")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(grid, 2 * mu_law_encode(grid) / 255 - 1, label="μ-law level (scaled)")
axes[0].plot(grid, grid, "--", label="uniform")
axes[0].set(xlabel="sample value x", ylabel="quantised value", title="μ-law companding, K = 256")
axes[0].legend()
axes[1].hist(levels.flatten().numpy(), bins=64)
axes[1].set(xlabel="μ-law level", ylabel="count", title="levels used by the training clips")
plt.show()

# %% [markdown]
# ## Dilated causal convolutions and the receptive field
# A causal convolution of kernel 2 and dilation $d$ combines $h_{t-d}$ and $h_t$. Stacking dilations
# $1, 2, 4, \dots, 2^{L-1}$ doubles the reach at each layer, so the output at step $t$ sees
#
# $$r = 1 + \sum_k d_k$$
#
# steps back at a cost linear in $L$, the **receptive field**. Each layer is a gated unit
# $z = \tanh(W_f * h + V_f c) \odot \sigma(W_g * h + V_g c)$ with residual and skip connections; the
# global context $c$, here the one-hot digit, shifts every gate. We check causality through gradients:
# the logits at one step of a small untrained WaveNet depend on exactly $r$ earlier samples.

# %%
small = WaveNetNet(64, num_levels=16, residual_channels=4, skip_channels=4, dilations=[1, 2, 4, 8])
inputs = small.relax(torch.zeros(1, 64, dtype=torch.long)).requires_grad_()
small(inputs)[0, 40].sum().backward()
seen = inputs.grad[0].abs().sum(-1) > 0  # (T,): which input steps move the logits at step 40
print(
    f"receptive field {small.receptive_field}: logits at step 40 depend on steps "
    f"{seen.nonzero().min().item()}..{seen.nonzero().max().item()}, {int(seen.sum())} in all"
)
fig, ax = plt.subplots(figsize=(9, 2))
ax.stem(seen.float().numpy())
ax.axvline(40, color="red", label="predicted step")
ax.set(
    xlabel="input step", ylabel="depends", title="Logits at step 40 of a WaveNet with dilations 1, 2, 4, 8"
)
ax.legend()
plt.show()

# %% [markdown]
# ## WaveNet as a Pyro program
# The program observes each clip at one site whose distribution is `pplgen.distributions.WaveNet`:
# `log_prob` quantises with μ-law and sums the $T$ categorical log-probabilities, one pass. The digit
# enters as a one-hot global context, so the model is $p(x \mid y)$ and can be asked to say a digit.
# (The zoo's `wavenet` model, `pplgen.models.WaveNetModel`, is the same program with larger defaults.)


# %%
class SpokenDigitWaveNet(PyroModule):
    def __init__(self, length, channels, dilations):
        super().__init__()
        self.net = WaveNetNet(
            length, residual_channels=channels, skip_channels=2 * channels, dilations=dilations, global_dim=10
        )

    @pyro_method
    def model(self, x, y):
        digit = F.one_hot(y, 10).to(x.dtype)  # (N, 10): the global context
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", WaveNet(self.net, digit), obs=x)


dilations = [2**i for i in range(8)] if smoke else [2**i for i in range(10)] * 2
wavenet = SpokenDigitWaveNet(length, channels=16 if smoke else 32, dilations=dilations)
field = wavenet.net.receptive_field
print(f"receptive field {field} samples = {1000 * field / rate:.0f} ms")
graph = pplgen.inspect(wavenet.model, audio[:4], labels[:4])
print(graph.graph["family"], "-", graph.graph["reason"])
pplgen.draw(graph)
plt.show()

# %% [markdown]
# ## Training and bits per sample
# The natural unit is nats per clip; divided by $T \ln 2$ it is **bits per sample**. A model that knew
# nothing would pay $\log_2 256 = 8$ bits per sample. Quiet stretches and the zero padding at the end of
# short recordings are cheap to predict, so a trained model pays much less; the smoke run's single
# epoch has barely started.

# %%
start = time.perf_counter()
wavenet_fit = pplgen.fit(
    wavenet.model,
    (audio, labels),
    epochs=1 if smoke else 30,
    batch_size=16,
    lr=1e-3,
    seed=0,
    device=device,
)
print(f"trained {len(wavenet_fit.history)} epochs in {time.perf_counter() - start:.1f} s")
bits = pplgen.bits_per_dim(wavenet_fit, (audio_test, labels_test))
print(f"test: {bits:.3f} bits per sample (8 for a uniform guess over 256 levels)")

# %% [markdown]
# ## Generation with and without the cached convolutions
# Scoring a clip is one pass; generating one is $T$ steps, each needing the sample before. The naive
# way re-runs the whole network over the sequence at every step. The cached way (Paine et al. 2016)
# keeps, for each layer of dilation $d$, a queue of its last $d$ inputs, so a new sample costs one step
# of each layer. The convolution weights do not depend on $T$, so to keep the naive path affordable we
# time both on a shorter copy of the trained network; both draw their uniforms up front and must give
# identical clips.

# %%
short_length = 300 if smoke else 1000
short = WaveNetNet(
    short_length,
    residual_channels=wavenet.net.start.shape[0],
    skip_channels=2 * wavenet.net.start.shape[0],
    dilations=dilations,
    global_dim=10,
).to(device)
short.load_state_dict(wavenet.net.state_dict())
five = WaveNet(short, F.one_hot(torch.arange(5, device=device), 10).float())
timings = {}
for naive in (False, True):
    torch.manual_seed(1)
    start = time.perf_counter()
    timings[naive] = (five.sample(naive=naive), time.perf_counter() - start)
(cached, fast), (slow_clips, slow) = timings[False], timings[True]
print(
    f"{short_length} samples x 5 clips: cached {fast:.2f} s, naive {slow:.2f} s, "
    f"ratio {slow / fast:.1f}x, identical: {torch.equal(cached, slow_clips)}"
)

# %% [markdown]
# Now full-length clips from the program itself, one per digit asked for (`pplgen.sample` runs the
# program with its observation removed, through the cached path). Compare them with real clips: after
# the short training of the smoke run the generated clips are noise; with full training, look for
# voiced stretches with harmonics (horizontal bands in the spectrogram) and silence after the word.

# %%
asked = torch.tensor([0, 3, 7])
generated = pplgen.sample(wavenet_fit, 3, (audio[:3], asked)).cpu()
real = torch.stack([audio_test[labels_test == d][0] for d in asked])
clips = torch.cat([real, generated])
fig = pplgen.plot.waveform(clips, rate)
fig.suptitle(f"clips 1-3: real digits {asked.tolist()}; clips 4-6: generated for the same digits")
plt.show()
fig = pplgen.plot.spectrogram(clips, rate)
fig.suptitle("spectrograms: clips 1-3 real, clips 4-6 generated")
plt.show()

# %% [markdown]
# ## Characters: tiny Shakespeare, or a stand-in
# Text is a sequence of tokens; at the character level the vocabulary is the set of characters. We use
# tiny Shakespeare (Karpathy 2015) when it is in `PPLGEN_DATA`; otherwise a public-domain text that
# ships with Python: the Zen of Python (the `this` module, stored ROT13-encoded) followed by the
# docstrings of some standard-library modules.

# %%
block = 64 if smoke else 256
try:
    shakespeare = pplgen.data.load("shakespeare", block_size=block)
    text_source = "tiny Shakespeare"
    vocab = shakespeare.meta["vocab"]
    tokens = shakespeare.x[torch.randperm(len(shakespeare.x))[: 300 if smoke else None]]
    tokens_valid = pplgen.data.load("shakespeare", split="valid", block_size=block).x[: 60 if smoke else None]
except pplgen.errors.DataFileError:
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    modules = (collections, functools, itertools, json, re, string, textwrap)
    text = "\n\n".join([codecs.decode(this.s, "rot13")] + [module.__doc__ for module in modules])
    text_source = "the Zen of Python and standard-library docstrings (a stand-in: tiny Shakespeare is absent)"
    vocab = "".join(sorted(set(text)))
    ids = torch.tensor([vocab.index(c) for c in text])
    blocks = ids[: len(ids) // block * block].reshape(-1, block)
    cut = int(0.9 * len(blocks))
    tokens, tokens_valid = blocks[:cut], blocks[cut:]
print(
    f"text: {text_source}; vocabulary of {len(vocab)} characters; "
    f"{len(tokens)} training and {len(tokens_valid)} validation blocks of {block}"
)


def decode_text(row):
    return "".join(vocab[i] for i in row.tolist())


print(repr(decode_text(tokens[0])))

# %% [markdown]
# ## A character Transformer
# A decoder-only Transformer reads $x_{<t}$ (shifted right behind a learned start token) and gives
# $p(x_t \mid x_{<t}) = \mathrm{softmax}(E\, h_t^L)$. Its attention is masked causally: position $t$
# computes $\mathrm{softmax}(q_t k_{\le t}^\top / \sqrt{d})\, v_{\le t}$ over earlier positions only
# (Vaswani et al. 2017). `pplgen.distributions.SequenceLM` puts it at a sample site; the zoo's `charlm`
# (`pplgen.models.CharTransformer`) is this program with nanoGPT's sizes.


# %%
class CharacterLM(PyroModule):
    def __init__(self, config):
        super().__init__()
        self.net = TransformerNet(config)

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", SequenceLM(self.net), obs=x)


config = TransformerConfig(
    vocab_size=len(vocab),
    block_size=block,
    n_layer=2 if smoke else 4,
    n_head=2 if smoke else 4,
    n_embd=64 if smoke else 256,
    dropout=0.0 if smoke else 0.1,
)
charlm = CharacterLM(config)
graph = pplgen.inspect(charlm.model, tokens[:4])
print(graph.graph["family"], "-", graph.graph["reason"])

# %% [markdown]
# The loss is the exact negative log-likelihood of each block; divided by $T \ln 2$ it is **bits per
# character**. A uniform guess over the vocabulary costs $\log_2 K$ bits.

# %%
start = time.perf_counter()
charlm_fit = pplgen.fit(
    charlm.model,
    tokens,
    valid=tokens_valid,
    epochs=2 if smoke else 20,
    batch_size=32,
    lr=3e-3 if smoke else 1e-3,
    seed=0,
    device=device,
)
print(f"trained {len(charlm_fit.history)} epochs in {time.perf_counter() - start:.1f} s")
bpc = pplgen.bits_per_dim(charlm_fit, tokens_valid)
print(f"validation: {bpc:.3f} bits per character (uniform guess: {math.log2(len(vocab)):.3f})")
pplgen.plot.training_curves(charlm_fit.history)
plt.show()

# %% [markdown]
# ## Generation with the key/value cache
# Without a cache, step $t$ re-runs the Transformer over all $t$ positions, $O(T^2)$ attention per step
# and $O(T^3)$ in all. With a cache each block keeps the keys and values of earlier positions, so a step
# processes one new position. We time both from the same seed and check that they produce the same
# characters.

# %%
charlm.net.eval()
lm = SequenceLM(charlm.net)
timings = {}
for naive in (False, True):
    torch.manual_seed(2)
    start = time.perf_counter()
    timings[naive] = (lm.sample((4,), naive=naive), time.perf_counter() - start)
(cached, fast), (slow_text, slow) = timings[False], timings[True]
print(
    f"{block} characters x 4: cached {fast:.2f} s, naive {slow:.2f} s, ratio {slow / fast:.1f}x, "
    f"identical: {torch.equal(cached, slow_text)}"
)

# %% [markdown]
# Finally, text. Sampling at temperature $\tau < 1$ divides the logits by $\tau$ before the softmax,
# sharpening each conditional; `log_prob` is unchanged. With the smoke run's few steps expect frequent
# characters and spaces in roughly the right proportions; trained longer, words and line structure
# appear.

# %%
prompt = tokens_valid[0, :16]  # the first 16 validation characters
for temperature in (1.0, 0.7):
    torch.manual_seed(3)
    sample = SequenceLM(charlm.net, temperature=temperature).generate_from(prompt.to(device), block - 16)
    print(f"--- temperature {temperature}, prompt {decode_text(prompt)!r} ---")
    print(decode_text(sample.cpu()))

# %% [markdown]
# ## What to take away
# * Dilated causal convolutions reach $1 + \sum_k d_k$ samples back with few layers; causal attention
#   reaches every earlier token. Both compute all conditionals in one pass, so the likelihood is exact.
# * μ-law quantisation turns audio into a classification over 256 levels with finer steps where speech
#   mostly lives.
# * Generation is sequential; queues of past activations (WaveNet) and key/value caches (Transformer)
#   make each step cost one new position instead of a full pass.
