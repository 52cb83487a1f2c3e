"""The fast path of training steps: the same parameters as the plain path, a late parameter still found,
the run saying which path it took, and bad data still refused although the loop skips its scans."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pplgen
from pplgen.errors import DataError, data_scanned, support_scans
from pplgen.infer.trainer import Trainer
from pplgen.models import VAE


def _vae_fit(**options):
    torch.manual_seed(0)
    vae = VAE(12, z_dim=2, hidden=8)
    x = torch.bernoulli(torch.full((64, 12), 0.4), generator=torch.Generator().manual_seed(1))
    result = pplgen.fit(vae.model, x, vae.guide, epochs=3, batch_size=16, seed=0, progress=False, **options)
    return result, {k: v.detach().clone() for k, v in vae.state_dict().items()}


def test_direct_steps_reach_the_plain_paths_parameters(monkeypatch):
    direct, direct_params = _vae_fit()
    monkeypatch.setattr(Trainer, "_runs_bare", lambda self, batch, num_data: False)
    plain, plain_params = _vae_fit()
    assert (direct.settings["steps"], plain.settings["steps"]) == ("direct", "plain")
    for name, value in direct_params.items():
        torch.testing.assert_close(value, plain_params[name], rtol=0, atol=0, msg=name)
    assert [row["loss"] for row in direct.history] == [row["loss"] for row in plain.history]


def test_a_parameter_declared_late_is_still_trained():
    pyro.clear_param_store()
    torch.manual_seed(0)
    net, calls = nn.Linear(3, 3), []

    def model(x):
        pyro.module("net", net)
        calls.append(1)
        shift = pyro.param("shift", torch.zeros(3)) if len(calls) > 6 else 0.0  # appears after setup
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(net(x * 0) + shift, 1.0).to_event(1), obs=x)

    x = torch.randn(32, 3) + 2.0
    result = pplgen.fit(model, x, epochs=20, batch_size=8, lr=0.05, seed=0, progress=False, valid_fraction=0)
    assert result.settings["steps"] == "plain"  # the late parameter sent the steps back to the plain path
    assert pyro.param("shift").detach().abs().min() > 0.1  # and it trained


def test_fused_adam_for_floating_point_parameters():
    result, _ = _vae_fit()
    assert result.trainer.optimizer.defaults["fused"] is True


def test_the_loop_skips_per_batch_scans_but_bad_data_are_refused_first():
    with data_scanned():
        assert not support_scans()
    assert support_scans()
    vae = VAE(12, z_dim=2, hidden=8)
    x = torch.bernoulli(torch.full((64, 12), 0.4))
    x[40, 3] = 0.5  # not binary: found by fit's scan of all the data before any step
    with pytest.raises(DataError, match="binary data"):
        pplgen.fit(vae.model, x, vae.guide, epochs=1, progress=False)
