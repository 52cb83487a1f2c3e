"""pplgen.codec: rANS, frequency tables, and compress/decompress with exact and latent models.

Every round trip is checked with ``torch.equal``; sizes are checked against the information the model
assigns (the coder may only add its rounding and a fixed overhead).
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule

import pplgen
from pplgen.codec import Message, compress, decompress, describe
from pplgen.codec.tables import bernoulli_table, categorical_table
from pplgen.errors import CodecError, DataError
from pplgen.models import VAE, NADEModel, PixelCNNModel

LN2 = math.log(2)


def random_tables(rng, count, symbols, precision):
    logits = torch.from_numpy(rng.normal(size=(count, symbols)) * 2)
    return categorical_table(logits, precision), torch.softmax(logits, -1).numpy()


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_ans_pops_undo_pushes_and_bits_back_returns_to_the_start(lanes):
    rng = np.random.default_rng(0)
    # a bits-back pattern: pop first (borrowing below the tail), then push many calls, then decode all
    first, _ = random_tables(rng, 50, 4, 16)
    calls = [random_tables(rng, 50, 5, 16) for _ in range(40)]
    symbols = [np.array([rng.choice(5, p=p[b]) for b in range(50)]) for _, p in calls]
    message = Message(lanes)
    borrowed = first.pop(message)
    for (table, _), s in reversed(list(zip(calls, symbols, strict=True))):
        table.push(message, s)
    tail, heads, count = message.to_words()
    assert count > 0  # the first pop had nothing to decode but the virtual words

    back = Message.from_words(tail, heads, count)
    for (table, _), s in zip(calls, symbols, strict=True):
        np.testing.assert_array_equal(table.pop(back), s)
    first.push(back, borrowed)
    assert back.is_initial()


def test_ans_size_is_the_information_plus_the_heads():
    rng = np.random.default_rng(1)
    calls = [random_tables(rng, 200, 3, 20) for _ in range(100)]
    message, information = Message(8), 0.0
    for table, p in calls:
        s = np.array([rng.choice(3, p=row) for row in p])
        table.push(message, s)
        information += table.bits(s)
    tail, heads, _ = message.to_words()
    size = 32 * len(tail) + 64 * len(heads)
    assert information <= size <= information + 64 * len(heads) + 32 * 8


def test_tables_keep_every_symbol_codable_and_sum_to_the_precision():
    logits = torch.tensor([[0.0, -40.0, 3.0], [5.0, 5.0, 5.0]])
    table = categorical_table(logits, 12)
    freqs = np.diff(table.cum, axis=1)
    assert (freqs >= 1).all() and (table.cum[:, -1] == 4096).all()
    # the cost of each symbol is within K / 2^p of the model's own -log2 p
    probs = torch.softmax(logits.double(), -1).numpy()
    for s in range(3):
        cost = table.bits(np.array([s, s]))
        assert cost == pytest.approx(-np.log2(probs[:, s]).sum(), abs=0.01) or probs[0, s] < 1e-3
    binary = bernoulli_table(torch.tensor([-30.0, 0.0, 30.0]), 16)
    assert (np.diff(binary.cum, axis=-1) >= 1).all() and binary.cum[1, 1] == 2**15 - 1 + 1


@pytest.fixture(scope="module")
def binary_digits(digits):
    return digits[0].x[:150]


def test_nade_round_trip_and_size_within_a_percent_of_its_likelihood(binary_digits):
    torch.manual_seed(0)
    nade = NADEModel(dim=64, hidden=16)
    x = torch.cat([binary_digits] * 4)  # 600 points: the fixed overhead (header, heads) is small beside them
    data = compress(nade.model, x, device="cpu", lanes=4)
    assert torch.equal(decompress(nade.model, data, device="cpu"), x)
    information = -pplgen.log_likelihood(nade.model, x, device="cpu").sum().item() / LN2
    assert information < 8 * len(data) < 1.01 * information + 64 * 4 + 8 * 400  # 4 heads, a header


def test_pixelcnn_round_trip_on_digit_levels(digits):
    torch.manual_seed(1)
    train = pplgen.data.load("digits", "train", variant="levels")
    model = PixelCNNModel.from_dataset(train, channels=8, layers=2)
    x = train.x[:40]
    data = compress(model.model, x, device="cpu")
    back = decompress(model.model, data, device="cpu")
    assert back.dtype == x.dtype and torch.equal(back, x)


def test_one_changed_bit_and_empty_input(binary_digits):
    torch.manual_seed(2)
    nade = NADEModel(dim=64, hidden=8)
    x = binary_digits[:30].clone()
    flipped = x.clone()
    flipped[7, 20] = 1 - flipped[7, 20]
    a, b = compress(nade.model, x, device="cpu"), compress(nade.model, flipped, device="cpu")
    assert a != b
    assert torch.equal(decompress(nade.model, a, device="cpu"), x)
    assert torch.equal(decompress(nade.model, b, device="cpu"), flipped)
    empty = compress(nade.model, x[:0], device="cpu")
    out = decompress(nade.model, empty, device="cpu")
    assert out.shape == (0, 64) and out.dtype == x.dtype


class LinearBernoulli(PyroModule):
    """z ~ N(0, I_2), x ~ Bernoulli(sigmoid(W z + b)): a latent program small enough to check by hand."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.weight = torch.nn.Parameter(2 * torch.randn(2, 24, generator=generator))
        self.bias = torch.nn.Parameter(torch.randn(24, generator=generator))
        self.encoder = torch.nn.Linear(24, 4)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=z @ self.weight + self.bias).to_event(1), obs=x)

    def guide(self, x):
        loc, log_scale = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def fit_linear_bernoulli(seed: int, num: int, epochs: int, full_rank: bool = False):
    """A LinearBernoulli fitted to ``num`` points drawn from itself, with its own guide or a full-rank one."""
    torch.manual_seed(seed)
    program = LinearBernoulli()
    with torch.no_grad():
        z = torch.randn(num, 2)
        x = torch.bernoulli(torch.sigmoid(z @ program.weight + program.bias))
    guide = pplgen.AmortisedGuide(program.model, posterior="full_rank") if full_rank else program.guide
    return pplgen.fit(program.model, x, guide, epochs=epochs, batch_size=100, device="cpu", seed=0), x


def coded_and_negative_elbo(result, x) -> tuple[int, float]:
    """Round-trip ``x`` by bits back, and return the message's bits and the negative ELBO in bits."""
    data = compress(result, x, lanes=2)  # each lane costs its heads and its first point's latents in full
    assert torch.equal(decompress(result, data), x)
    with torch.no_grad():
        log_w = torch.stack([pplgen.log_likelihood(result, x, num_samples=1) for _ in range(30)])
    return 8 * describe(data)["message_bytes"], -log_w.mean(0).sum().item() / LN2


def test_bits_back_round_trip_and_size_near_the_negative_elbo():
    result, x = fit_linear_bernoulli(4, 1500, epochs=15)
    coded, negative_elbo = coded_and_negative_elbo(result, x)
    # bits back pays the negative ELBO, plus the first latents of each lane and the heads
    assert coded == pytest.approx(negative_elbo, rel=0.02)
    assert coded < negative_elbo + 2 * x.numel()  # far below coding the latents' buckets without bits back


def test_bits_back_with_a_full_covariance_posterior():
    """A full-rank q(z | x) is coded one dimension given the ones before it, and still pays its ELBO."""
    result, x = fit_linear_bernoulli(7, 1500, epochs=10, full_rank=True)
    scale_tril = pyro.poutine.trace(result.guide).get_trace(x[:5]).nodes["z"]["fn"].scale_tril
    assert scale_tril[:, 1, 0].abs().max() > 1e-3  # the posterior is not factorised
    coded, negative_elbo = coded_and_negative_elbo(result, x)
    assert coded == pytest.approx(negative_elbo, rel=0.02)


def test_vae_with_labels_given_to_both_ends(digits):
    train = digits[0]
    torch.manual_seed(5)
    cvae = pplgen.models.build("cvae", train, z_dim=4, hidden=16)
    x, y = train.x[:40], train.y[:40]
    data = compress(cvae.model, (x, y), guide=cvae.guide, device="cpu")
    assert torch.equal(decompress(cvae.model, data, (y,), guide=cvae.guide, device="cpu"), x)


def test_discretised_logistic_vae_round_trip():
    train = pplgen.data.load("digits", "train", variant="levels")
    torch.manual_seed(6)
    vae = VAE.from_dataset(train, z_dim=3, hidden=16, likelihood="logistic")
    x = train.x[:32]
    data = compress(vae.model, x, guide=vae.guide, device="cpu")
    assert torch.equal(decompress(vae.model, data, guide=vae.guide, device="cpu"), x)


def test_bad_bytes_and_the_wrong_model_are_refused(binary_digits):
    torch.manual_seed(7)
    nade, other = NADEModel(dim=64, hidden=8), NADEModel(dim=64, hidden=8)
    x = binary_digits[:50]
    data = compress(nade.model, x, device="cpu")
    with pytest.raises(CodecError, match="another model"):
        decompress(other.model, data, device="cpu")
    with pytest.raises(CodecError, match="truncated"):
        decompress(nade.model, data[:-5], device="cpu")
    with pytest.raises(CodecError, match="not made by pplgen"):
        decompress(nade.model, b"hello world", device="cpu")
    damaged = bytearray(data)
    damaged[-20] ^= 0x10  # one bit of the message
    with pytest.raises(CodecError, match="corrupted"):
        decompress(nade.model, bytes(damaged), device="cpu")
    with pytest.raises(CodecError, match="expects bytes"):
        decompress(nade.model, "text", device="cpu")


def test_inputs_the_coder_cannot_take(binary_digits):
    nade = NADEModel(dim=64, hidden=8)
    with pytest.raises(DataError, match="levels"):
        compress(nade.model, binary_digits[:4] * 0.5, device="cpu")
    with pytest.raises(DataError, match="NaN"):
        compress(nade.model, torch.full((3, 64), float("nan")), device="cpu")
    vae = VAE(dim=64, z_dim=2, hidden=8)
    with pytest.raises(CodecError, match="guide"):
        compress(vae.model, binary_digits[:4], device="cpu")
    gan = pplgen.models.build("gan", pplgen.data.load("ring8", "train"))
    with pytest.raises(CodecError, match="implicit"):
        compress(gan.model, pplgen.data.load("ring8", "train").x[:4].round(), device="cpu")
    with pytest.raises(CodecError, match="lanes"):
        compress(nade.model, binary_digits[:4], lanes=0, device="cpu")


def test_sequence_and_wavenet_models_code_through_their_cached_paths():
    torch.manual_seed(8)
    charlm = pplgen.models.CharTransformer(
        vocab_size=12, length=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0
    )
    tokens = torch.randint(0, 12, (20, 16))
    data = compress(charlm.model, tokens, device="cpu")
    assert torch.equal(decompress(charlm.model, data, device="cpu"), tokens)

    wavenet = pplgen.models.WaveNetModel(length=64, num_levels=16, residual_channels=4, skip_channels=8,
                                         dilations=(1, 2, 4))  # fmt: skip
    levels, labels = torch.randint(0, 16, (6, 64)), torch.arange(6)
    audio = pplgen.distributions.wavenet.mu_law_decode(levels, 16)  # values on the model's levels
    data = compress(wavenet.model, (audio, labels), device="cpu")
    assert torch.equal(decompress(wavenet.model, data, (labels,), device="cpu"), audio)
    with pytest.raises(DataError, match="between"):
        compress(wavenet.model, (audio * 0.999, labels), device="cpu")
