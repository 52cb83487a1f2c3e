"""PixelCNN beyond the autoregressive contract: the blind spot, larger images, the zoo model on digits."""

import pyro
import pytest
import torch

import pplgen
from pplgen.data import Dataset, load
from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.errors import DataError, ModelError
from pplgen.models.pixelcnn import PixelCNNModel
from pplgen.nn import NADENet, warp_logits
from pplgen.nn.pixelcnn import PixelCNNNet


def _seen(net: PixelCNNNet, x: torch.Tensor) -> torch.Tensor:
    """``(D, D)``: entry [p, q] is True when the logits at flat pixel p depend on pixel q."""
    relaxed = x.detach().clone().requires_grad_()
    logits = net(relaxed)[0].reshape(x[0].numel(), -1)  # (D, 1 or K)
    rows = [
        torch.autograd.grad(logits[p].sum(), relaxed, retain_graph=True)[0][0] for p in range(len(logits))
    ]
    return torch.stack(rows).reshape(len(logits), -1) != 0


def test_original_has_a_blind_spot_and_gated_does_not():
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((1, 5, 8), 0.5))
    earlier = torch.ones(40, 40).tril(-1).bool()  # [p, q]: q comes before p in raster order
    gated = _seen(PixelCNNNet((5, 8), channels=8, layers=6), x)
    assert not gated[~earlier].any()  # sees nothing at or after the pixel
    assert gated[earlier].all()  # and everything before it: no blind spot
    original = _seen(PixelCNNNet((5, 8), channels=8, layers=6, gated=False), x)
    assert not original[~earlier].any()
    # pixel (2, 0) misses (1, 4): one row up and four to the right lies beyond 7x7 mask A, and mask-B
    # layers only reach up and to the left of what the row above saw
    assert not original[2 * 8 + 0, 1 * 8 + 4]
    assert original[2 * 8 + 0, 1 * 8 + 3]


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("num_levels", [2, 4])
def test_shapes_28x28(gated, num_levels):
    net = PixelCNNNet((28, 28), num_levels=num_levels, channels=8, layers=3, gated=gated)
    x = torch.randint(num_levels, (2, 28, 28))
    logits = net(x.float() if num_levels == 2 else x)
    assert logits.shape == ((2, 28, 28) if num_levels == 2 else (2, 28, 28, num_levels))
    d = PixelCNN(net)
    assert d.log_prob(x.float() if num_levels == 2 else x).shape == (2,)


@pytest.mark.parametrize(
    "settings",
    [
        dict(gated=True, kernel_size=5, first_kernel_size=7),
        dict(gated=True, num_levels=4, context_dim=3, first_kernel_size=3),
        dict(gated=False, kernel_size=5, first_kernel_size=3),
        dict(gated=False, num_levels=4, context_dim=3),
    ],
    ids=["gated_k5", "gated_levels_context", "original_k5", "original_levels_context"],
)
def test_cached_equals_naive_on_a_wider_image(settings):
    torch.manual_seed(0)
    net = PixelCNNNet((6, 9), channels=8, layers=4, **settings)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5 * torch.randn_like(p))
    u = torch.rand(16, 6, 9)
    context = torch.randn(16, 3) if "context_dim" in settings else None
    warp = (lambda logits: warp_logits(logits, 0.7, top_k=3)) if "num_levels" in settings else None
    cached = net.generate(u, context, warp)
    assert torch.equal(cached, net.generate_naive(u, context, warp))
    assert len(cached.unique()) == settings.get("num_levels", 2)


def test_bad_images_and_arguments():
    net = PixelCNNNet((4, 5), channels=4, layers=2, context_dim=3)
    context = torch.zeros(2, 3)
    with pytest.raises(DataError, match=r"expected images of shape \(B, 4, 5\), got \(2, 5, 4\)"):
        net(torch.zeros(2, 5, 4), context)
    with pytest.raises(DataError, match="expected images"):
        net(torch.zeros(2, 20), context)
    with pytest.raises(DataError, match=r"context of shape \(2, 3\)"):
        net(torch.zeros(2, 4, 5))
    with pytest.raises(DataError, match="event shape"):
        PixelCNN(net, context).log_prob(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        PixelCNNNet((4, 5), kernel_size=4)
    with pytest.raises(ValueError, match="image_shape"):
        PixelCNNNet((20,))
    with pytest.raises(ModelError, match="PixelCNNNet"):
        PixelCNN(NADENet(dim=20, hidden=4))


def test_zoo_model_trains_on_digits():
    data = load("digits")
    model = PixelCNNModel.from_dataset(data, channels=16, layers=4, first_kernel_size=5)
    assert model.net.num_levels == 2 and model.net.event_shape == (8, 8)
    x = data.x[:512]
    before = -pplgen.log_likelihood(model.model, x, device="cpu").mean()
    pplgen.fit(model.model, (x,), epochs=2, batch_size=64, lr=3e-3, seed=0, device="cpu", progress=False)
    after = -pplgen.log_likelihood(model.model, x, device="cpu")
    assert after.mean() < before - 5.0  # nats per image
    with torch.no_grad():
        exact = -PixelCNN(model.net).log_prob(x.reshape(-1, 8, 8))
    assert torch.allclose(after, exact, atol=1e-4)
    drawn = pplgen.sample(model.model, 3, x, device="cpu")
    assert drawn.shape == (3, 8, 8) and set(drawn.unique().tolist()) <= {0.0, 1.0}


def test_zoo_model_on_digit_levels():
    data = load("digits", variant="levels")
    model = PixelCNNModel.from_dataset(data, channels=8, layers=3, first_kernel_size=3)
    assert model.net.num_levels == 17 and model.config["num_levels"] == 17
    result = pplgen.fit(
        model.model, (data.x[:128],), epochs=1, batch_size=64, seed=0, device="cpu", progress=False
    )
    assert result.family == "exact"
    nll = -pplgen.log_likelihood(model.model, data.x[:16], device="cpu")
    assert torch.isfinite(nll).all() and (nll > 0).all()


def test_zoo_model_needs_images():
    flat = Dataset(name="toy", split="train", kind="binary", x=torch.zeros(4, 6))
    with pytest.raises(DataError, match="image_shape"):
        PixelCNNModel.from_dataset(flat)
    model = PixelCNNModel((2, 3), channels=4, layers=1)
    with pytest.raises(DataError, match=r"\(N, 6\)"):
        model.model(torch.zeros(4, 5))


def test_class_conditional_user_program():
    data = load("digits")
    x, y = data.x[:128], data.y[:128]
    net = PixelCNNNet((8, 8), channels=8, layers=3, context_dim=10, first_kernel_size=3)

    def model(x, y):
        pyro.module("pixelcnn", net)
        labels = torch.nn.functional.one_hot(y, 10).to(x.dtype)  # (N, 10)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", PixelCNN(net, labels), obs=x.reshape(-1, 8, 8))

    result = pplgen.fit(model, (x, y), epochs=1, batch_size=64, seed=0, device="cpu", progress=False)
    assert result.family == "exact"
    three = torch.nn.functional.one_hot(torch.tensor([3, 3]), 10).float()
    assert PixelCNN(net, three).sample().shape == (2, 8, 8)


def test_conditional_zoo_model_normalises_per_label_and_uses_it():
    import itertools

    from pplgen.models import ZOO, ConditionalPixelCNN

    tiny = ConditionalPixelCNN((2, 2), channels=4, layers=2, first_kernel_size=3, num_classes=3)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).reshape(16, 2, 2)
    for label in range(3):
        context = tiny.context(torch.full((16,), label), 16)
        assert torch.logsumexp(PixelCNN(tiny.net, context).log_prob(every), 0).abs() < 1e-5

    data = load("digits")
    model = ZOO["cpixelcnn"].from_dataset(data, channels=16, layers=3, first_kernel_size=3)
    assert model.takes_labels and model.config["num_classes"] == 10
    x, y = data.x[:600], data.y[:600]
    pplgen.fit(model.model, (x, y), epochs=8, batch_size=64, lr=3e-3, seed=0, device="cpu", progress=False)
    right = pplgen.log_likelihood(model.model, (x, y), device="cpu").mean()
    wrong = pplgen.log_likelihood(model.model, (x, (y + 5) % 10), device="cpu").mean()
    assert right > wrong + 1.0  # nats per image: the label tells the model what digit to expect
    with pytest.raises(DataError, match="labels"):
        model.model(x[:4])
    with pytest.raises(ModelError, match="takes no labels"):
        PixelCNNModel((8, 8), channels=4, layers=1).model(x[:4], y[:4])
