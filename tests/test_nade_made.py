"""NADE and MADE beyond the shared contract: closed forms, mask ensembles, the zoo models and the CLI."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch

import pplgen
from pplgen import data as datasets
from pplgen import models
from pplgen.cli import main
from pplgen.distributions import MADE, NADE
from pplgen.errors import ModelError
from pplgen.nn import MADENet, NADENet
from tests.ar_contract import grid


def test_nade_without_weights_is_independent_bernoullis():
    net = NADENet(dim=5, hidden=7)
    with torch.no_grad():
        net.V.zero_()
        net.b.copy_(torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
    x = grid([0.0, 1.0], (5,))
    expected = dist.Bernoulli(logits=net.b).to_event(1).log_prob(x)
    assert torch.allclose(NADE(net).log_prob(x), expected, atol=1e-6)


def test_made_ensemble_is_the_average_of_its_orderings():
    torch.manual_seed(0)
    net = MADENet(dim=5, hidden=[32], num_masks=3)
    x = grid([0.0, 1.0], (5,))
    per_mask = torch.stack([MADE(net, mask=m).log_prob(x).exp() for m in range(3)])
    assert torch.allclose(MADE(net).log_prob(x).exp(), per_mask.mean(0), atol=1e-6)
    assert not torch.allclose(per_mask[0], per_mask[1])  # the orderings really differ


def test_made_ensemble_samples_agree_with_its_log_prob():
    torch.manual_seed(1)
    net = MADENet(dim=3, hidden=[16], num_masks=4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    d = MADE(net)
    samples = d.sample((20000,))
    states = grid([0.0, 1.0], (3,))
    freq = (samples[:, None] == states).all(-1).float().mean(0)
    with torch.no_grad():
        assert torch.allclose(freq, d.log_prob(states).exp(), atol=0.015)


def test_made_random_mask_draws_orderings_and_checks_its_argument():
    net = MADENet(dim=4, hidden=[8], num_masks=5)
    torch.manual_seed(0)
    drawn = {MADE(net, mask="random").mask for _ in range(40)}
    assert drawn == set(range(5))
    with pytest.raises(ValueError, match="mask must be None, 'random' or 0 .. 4"):
        MADE(net, mask=5)
    with pytest.raises(ModelError, match="expects a pplgen.nn.MADENet"):
        MADE(NADENet(4, 8))
    with pytest.raises(ValueError, match="num_masks >= 1"):
        MADENet(dim=4, num_masks=0)


def test_made_first_mask_has_the_natural_order():
    net = MADENet(dim=6, hidden=[8, 8], num_masks=3, seed=4)
    assert net.orders[0].tolist() == list(range(6))
    assert sorted(net.orders[1].tolist()) == list(range(6)) and net.orders[1].tolist() != list(range(6))


@pytest.mark.parametrize(
    "name, config", [("nade", {"hidden": 32}), ("made", {"hidden": [64], "num_masks": 4})]
)
def test_zoo_models_learn_digits(name, config):
    train = datasets.load("digits")
    model = models.build(name, train, **config)
    x = train.x[:256]
    before = -pplgen.log_likelihood(model.model, x).mean()
    result = pplgen.fit(model.model, x, epochs=15, lr=1e-2, batch_size=64, seed=0, progress=False)
    after = -pplgen.log_likelihood(result, x).mean()
    assert after < before - 10  # 44 nats for independent fair coins; trained models get far below
    assert model.training  # evaluation ran in eval mode and restored the training mode


def test_made_model_trains_one_ordering_and_evaluates_the_ensemble():
    train = datasets.load("digits", variant="levels")
    model = models.build("made", train, hidden=[32], num_masks=3)
    assert model.config["num_levels"] == 17
    x = train.x[:8]
    model.train()
    torch.manual_seed(0)
    trace = pyro.poutine.trace(model.model).get_trace(x)
    assert trace.nodes["x"]["fn"].mask in range(3)
    model.eval()
    trace = pyro.poutine.trace(model.model).get_trace(x)
    assert trace.nodes["x"]["fn"].mask is None


def test_nade_refuses_non_binary_data():
    with pytest.raises(pplgen.errors.DataError, match="NADE models binary data"):
        models.build("nade", datasets.load("digits", variant="levels"))


def test_cli_fits_samples_and_evaluates_nade_with_settings(capsys, tmp_path):
    run_dir = tmp_path / "nade"
    argv = ["fit", "nade", "--data", "digits", "--epochs", "2", "--set", "hidden=16", "--out", str(run_dir)]
    assert main(argv) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["program"]["config"] == {"dim": 64, "hidden": 16}
    assert main(["sample", str(run_dir), "-n", "9", "--seed", "0"]) == 0
    assert (run_dir / "samples.png").stat().st_size > 500
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["estimator"] == "exact" and 10 < row["nats"] < 44.4


def test_cli_reports_bad_settings_in_one_line(capsys):
    assert main(["fit", "nade", "--data", "digits", "--set", "hidden"]) == 2
    assert "--set expects KEY=VALUE, got 'hidden'" in capsys.readouterr().err
    assert main(["fit", "nade", "--data", "digits", "--set", "width=3"]) == 2
    assert "width" in capsys.readouterr().err
