"""Contract cases for PixelCNN, gated and original (see ``tests/ar_contract.py``)."""

import torch

from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.nn.pixelcnn import PixelCNNNet
from tests.ar_contract import Case, grid


def _seeded(build, scale=0.8):
    def make():
        torch.manual_seed(11)
        net = build()
        with torch.no_grad():  # non-zero biases and peaked conditionals, so few states carry the mass
            for p in net.parameters():
                p.add_(scale * torch.randn_like(p))
        return net

    return make


def _one_hot_labels(n):
    labels = torch.randint(4, (n,), generator=torch.Generator().manual_seed(5))
    return torch.eye(4)[labels]  # (n, 4): a class one-hot


CASES = [
    Case(
        # 3 gated layers with 3x3 kernels reach 3 pixels left and right: the whole 3x4 image before a pixel
        "pixelcnn_gated",
        _seeded(lambda: PixelCNNNet((3, 4), channels=8, layers=3, first_kernel_size=3)),
        PixelCNN,
        states=lambda: grid([0.0, 1.0], (3, 4)),
        bad_value=lambda: torch.tensor([[0.0] * 4] * 2 + [[0.0, 0.0, 0.5, 0.0]]),
    ),
    Case(
        "pixelcnn_gated_levels_class",
        _seeded(
            lambda: PixelCNNNet(
                (2, 3), num_levels=3, channels=8, layers=3, context_dim=4, first_kernel_size=3
            ),
            scale=0.3,
        ),
        PixelCNN,
        states=lambda: grid([0, 1, 2], (2, 3)),
        bad_value=lambda: torch.tensor([[0, 1, 2], [3, 0, 0]]),
        context=_one_hot_labels,
    ),
    Case(
        # the original net has a blind spot, so not every earlier pixel need be seen
        "pixelcnn_original",
        _seeded(lambda: PixelCNNNet((3, 4), channels=8, layers=3, gated=False, first_kernel_size=5)),
        PixelCNN,
        states=lambda: grid([0.0, 1.0], (3, 4)),
        bad_value=lambda: torch.tensor([[-1.0] + [0.0] * 3] + [[0.0] * 4] * 2),
        full_dependence=False,
    ),
]
