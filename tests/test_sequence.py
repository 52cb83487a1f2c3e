"""The token language models beyond the shared contract: the key/value cache, temperature, top-k,
prompts, argument errors, and the zoo's character models on tiny Shakespeare."""

import pytest
import torch

import pplgen
from pplgen.distributions.sequence import SequenceLM
from pplgen.errors import DataError, ModelError
from pplgen.models.lm import CharLSTM, CharTransformer
from pplgen.nn.attention import CausalSelfAttention, KVCache, TransformerConfig
from pplgen.nn.nade import NADENet
from pplgen.nn.sequence import LSTMNet, TransformerNet
from tests.cases_sequence import CASES, _seeded, tiny_transformer
from tests.conftest import needs_data_file

NETS = {case.name: case for case in CASES}


def _net_and_context(name, n=1):
    case = NETS[name]
    return case.net(), None if case.context is None else case.context(n)


def greedy(net, batch, context=None):
    """The most likely token at every step, by teacher-forced passes of the whole network."""
    tokens = torch.zeros(batch, net.length, dtype=torch.long)
    with torch.no_grad():
        for t in range(net.length):
            tokens[:, t] = net(tokens, context)[:, t].argmax(-1)
    return tokens


# -- the key/value cache ---------------------------------------------------------------------------
def test_cached_attention_equals_full_attention_step_by_step():
    torch.manual_seed(0)
    attention = CausalSelfAttention(TransformerConfig(n_embd=16, n_head=4, dropout=0.0, bias=True)).eval()
    x = torch.randn(3, 7, 16)  # (B, T, C)
    with torch.no_grad():
        full = attention(x)
        cache = KVCache(7)
        steps = torch.cat([attention(x[:, t : t + 1], cache) for t in range(7)], dim=1)
        chunked_cache = KVCache(7)  # a prompt of 3 in one pass, then 2 and 2 (the explicit-mask path)
        chunks = torch.cat([attention(x[:, a:b], chunked_cache) for a, b in [(0, 3), (3, 5), (5, 7)]], dim=1)
    assert cache.length == 7
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunks, full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        attention(x[:, :1], cache)


@pytest.mark.parametrize("name", ["transformer_lm_context", "lstm_lm"])
def test_incremental_logits_equal_the_teacher_forced_pass(name):
    net, context = _net_and_context(name, 2)
    x = torch.randint(net.vocab_size, (2, net.length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = net(x, context)  # (B, T, K)
        state = net.new_state(2)
        h = net.prepare(net.bos.expand(2, 1, -1), 0, context)
        steps = []
        for t in range(net.length):
            logits, state = net.run(h, state)
            steps.append(logits[:, -1])
            if t + 1 < net.length:
                h = net.prepare(net.embed(x[:, t : t + 1]), t + 1, context)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_one_hot_relaxation_gives_the_same_logits():
    net, _ = _net_and_context("transformer_lm")
    x = torch.randint(5, (3, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(net(net.relax(x)), net(x))


# -- temperature, top-k, prompts ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["transformer_lm", "lstm_lm"])
def test_low_temperature_approaches_greedy(name):
    net, _ = _net_and_context(name)
    best = greedy(net, 1)[0]
    agreement = {}
    for temperature in [1.0, 0.3, 1e-3]:
        torch.manual_seed(5)
        x = SequenceLM(net, temperature=temperature).sample((400,))
        agreement[temperature] = (x == best).all(-1).float().mean().item()
    assert agreement[1.0] < agreement[0.3] < agreement[1e-3] == 1.0
    torch.manual_seed(6)
    assert (SequenceLM(net, top_k=1).sample((50,)) == best).all()


@pytest.mark.parametrize("name", ["transformer_lm", "transformer_lm_context", "lstm_lm"])
def test_top_k_emits_only_the_k_most_likely_tokens(name):
    net, context = _net_and_context(name, 300)
    d = SequenceLM(net, context, top_k=2)
    torch.manual_seed(7)
    x = d.sample(() if context is not None else (300,))  # (300, T)
    with torch.no_grad():
        allowed = net(x, context).topk(2, dim=-1).indices  # (300, T, 2): each step's top two given the past
    assert (allowed == x.unsqueeze(-1)).any(-1).all()
    assert len(x.unique()) > 2  # the top two depend on the past
    torch.manual_seed(7)
    assert torch.equal(d.sample(() if context is not None else (300,), naive=True), x)  # warped alike


def test_sampling_at_temperature_one_without_top_k_is_unwarped():
    net, _ = _net_and_context("transformer_lm")
    d = SequenceLM(net, temperature=1.0)
    assert d.warp() is None
    torch.manual_seed(8)
    plain = d.sample((20,))
    torch.manual_seed(8)
    assert torch.equal(plain, SequenceLM(net, temperature=2.0).sample((20,), warp=lambda logits: logits))


@pytest.mark.parametrize("name", ["transformer_lm_context", "lstm_lm"])
def test_generate_from_a_prompt_continues_the_same_sequence(name):
    net, context = _net_and_context(name, 4)
    u = torch.rand(4, net.length, generator=torch.Generator().manual_seed(9))
    whole = net.generate(u, context)
    for size in [0, 2, net.length - 1, net.length]:
        torch.testing.assert_close(net.generate(u, context, prompt=whole[:, :size]), whole, rtol=0, atol=0)
    d = SequenceLM(net, None if context is None else context[0])
    continued = d.generate_from(torch.tensor([[1, 0], [2, 2], [0, 3]]), 3)
    assert continued.shape == (3, 5)
    assert continued[:, :2].tolist() == [[1, 0], [2, 2], [0, 3]]


def test_generate_from_broadcasts_against_the_batch():
    net, context = _net_and_context("transformer_lm_context", 3)
    out = SequenceLM(net, context, top_k=2).generate_from(torch.tensor([3]), 4)
    assert out.shape == (3, 5) and (out[:, 0] == 3).all()


# -- errors ----------------------------------------------------------------------------------------
def test_bad_token_ids_name_the_vocabulary():
    net, _ = _net_and_context("transformer_lm")
    d = SequenceLM(net)
    for bad in ([0, 1, 2, 3, 5], [0, -1, 0, 0, 0], [0.5, 0, 0, 0, 0]):
        with pytest.raises(DataError, match="vocabulary of 5 symbols"):
            d.log_prob(torch.tensor(bad))
    with pytest.raises(DataError, match="vocabulary of 5"):
        d.generate_from(torch.tensor([7]), 2)
    with pytest.raises(DataError, match="must fit a block of 5"):
        d.generate_from(torch.tensor([1, 2]), 4)
    with pytest.raises(DataError, match="one-hot floats"):
        net(torch.zeros(2, 6, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 0}, r"top_k .* 1 \.\. 5"),
        ({"top_k": 6}, r"top_k .* 1 \.\. 5"),
        ({"top_k": 2.5}, "top_k"),
    ],
)
def test_bad_temperature_and_top_k(kwargs, match):
    net, _ = _net_and_context("transformer_lm")
    with pytest.raises(ModelError, match=match):
        SequenceLM(net, **kwargs)


def test_bad_networks():
    with pytest.raises(ModelError, match="TransformerNet or LSTMNet"):
        SequenceLM(NADENet(dim=4, hidden=8))
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 3"):
        LSTMNet(vocab_size=2, length=4)
    with pytest.raises(ValueError, match="multiple of n_head"):
        TransformerConfig(n_embd=10, n_head=3)


# -- the zoo models on tiny Shakespeare ------------------------------------------------------------
def _nats_per_char(model, x):
    model.eval()
    with torch.no_grad():
        return -SequenceLM(model.net).log_prob(x).mean().item() / x.shape[1]


@needs_data_file("tinyshakespeare.txt.gz")
def test_zoo_defaults_are_nanogpt_shakespeare_char():
    data = pplgen.data.load("shakespeare", "valid")
    model = CharTransformer.from_dataset(data)
    expected = {"vocab_size": 65, "length": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2}
    assert model.config == expected
    size = sum(p.numel() for p in model.net.parameters()) - model.net.wpe.weight.numel()
    assert size == pytest.approx(10.65e6, rel=1e-3)  # nanoGPT's count, position embeddings left out
    assert CharLSTM.from_dataset(data).config["hidden"] == 512
    with pytest.raises(DataError, match="token blocks"):
        CharLSTM.from_dataset(pplgen.data.load("digits"))


@needs_data_file("tinyshakespeare.txt.gz")
@pytest.mark.parametrize(
    "cls, sizes",
    [
        (CharTransformer, {"n_layer": 1, "n_head": 2, "n_embd": 32, "dropout": 0.0}),
        (CharLSTM, {"hidden": 32, "num_layers": 1, "dropout": 0.0}),
    ],
)
def test_zoo_models_fit_shakespeare_blocks(cls, sizes):
    data = pplgen.data.load("shakespeare", "train", block_size=32)
    x = data.x[:64]
    torch.manual_seed(0)
    model = cls.from_dataset(data, **sizes)
    graph = pplgen.inspect(model.model, x[:4])
    assert graph.graph["family"] == "exact" and graph.nodes["x"]["autoregressive"]
    before = _nats_per_char(model, x)
    pplgen.fit(model.model, x, epochs=1, batch_size=16, lr=1e-2, seed=0, valid_fraction=0, progress=False)
    after = _nats_per_char(model, x)
    assert before == pytest.approx(4.17, abs=0.2)  # about log 65 before training
    assert after < before - 0.3
    text = "".join(data.meta["vocab"][i] for i in SequenceLM(model.net, top_k=5).sample().tolist())
    assert len(text) == 32


def test_seeded_cases_are_deterministic():
    a, b = _seeded(lambda: tiny_transformer())(), _seeded(lambda: tiny_transformer())()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert isinstance(a, TransformerNet)
