"""The world model on a linear-Gaussian system whose exact forecast is known, the forecast baselines, the
checks on trajectories, and Gymnasium collection and planning (skipped without gymnasium)."""

import sys

import pytest
import torch

import pplgen
from pplgen import data as datasets
from pplgen.control import CopyLast, KnownDynamics, LinearDynamics, MPCPolicy, MPCSettings, forecast_scores
from pplgen.data import LinearGaussianSystem, windows
from pplgen.errors import DataError, ModelError
from pplgen.models import ZOO, WorldModel

SMALL = {"z_dim": 4, "transition_dim": 32, "emission_dim": 32, "rnn_dim": 32}
PREFIX, HORIZONS = 10, (1, 10)


@pytest.fixture(scope="module")
def system():
    return LinearGaussianSystem.rotation()


@pytest.fixture(scope="module")
def trained(system):
    """A world model trained on 160 trajectories of 20 steps of the linear system."""
    torch.manual_seed(0)  # the initial weights
    obs, actions = system.simulate(160, 20, seed=0)
    model = WorldModel.from_data(obs, actions, **SMALL)
    pplgen.fit(model.model, (obs, actions), model.guide, epochs=30, batch_size=32, lr=1e-2, seed=0)
    return model, obs, actions


@pytest.fixture(scope="module")
def test_windows(system):
    obs, actions = system.simulate(100, PREFIX + max(HORIZONS), seed=2)  # (100, 21, 2), (100, 20, 1)
    return obs, actions


# -- forecasts against the truth ------------------------------------------------------------------------
def test_world_model_beats_copy_last_and_nears_the_true_forecast(system, trained, test_windows):
    model, obs, actions = trained
    test_obs, test_actions = test_windows
    torch.manual_seed(1)
    world = lambda p, a, f: model.forecast(p, a, f, num_samples=100)
    learned = forecast_scores(world, test_obs, test_actions, PREFIX, HORIZONS)
    truth = forecast_scores(system, test_obs, test_actions, PREFIX, HORIZONS)
    copy = forecast_scores(CopyLast().fit(obs, actions, 10), test_obs, test_actions, PREFIX, HORIZONS)
    for h in HORIZONS:
        assert learned[h]["rmse"] < 0.5 * copy[h]["rmse"], (h, learned[h], copy[h])
        assert learned[h]["nll_nats"] < copy[h]["nll_nats"], (h, learned[h], copy[h])
        assert learned[h]["rmse"] >= 0.9 * truth[h]["rmse"]  # no forecast beats the truth by much
    assert learned[10]["rmse"] < 1.3 * truth[10]["rmse"], (learned[10], truth[10])
    assert learned[1]["rmse"] < 1.5 * truth[1]["rmse"], (learned[1], truth[1])


def test_linear_baseline_recovers_the_system(system, trained, test_windows):
    _, obs, actions = trained
    linear = LinearDynamics().fit(obs, actions)
    assert torch.allclose(linear.A, system.A, atol=0.05), linear.A
    assert torch.allclose(linear.B, system.B, atol=0.05), linear.B
    assert linear.c.abs().max() < 0.05
    test_obs, test_actions = test_windows
    fitted = forecast_scores(linear, test_obs, test_actions, PREFIX, HORIZONS)
    truth = forecast_scores(system, test_obs, test_actions, PREFIX, HORIZONS)
    assert fitted[10]["rmse"] < 1.2 * truth[10]["rmse"]


def test_copy_last_is_exact_for_a_constant_signal():
    obs = torch.ones(5, 8, 2).cumsum(0)  # each trajectory constant in time
    actions = torch.zeros(5, 7, 1)
    means, log_probs = CopyLast().fit(obs, actions, 3).forecast(obs[:, :4], actions, obs[:, 4:7])
    assert torch.equal(means, obs[:, 4:7]) and log_probs.shape == (5, 3)


# -- the program and its forecasts ----------------------------------------------------------------------
def test_graph_is_a_latent_chain_driven_by_actions():
    obs, actions = torch.randn(4, 6, 3), torch.randn(4, 5, 1)
    graph = pplgen.inspect(WorldModel.from_data(obs, actions, **SMALL).model, obs, actions)
    assert graph.graph["family"] == "latent"
    assert graph.graph["chains"]["z_t"] == [f"z_{t}" for t in range(6)]
    assert graph.nodes["o_5"]["kind"] == "observed" and graph.nodes["o_5"]["event_shape"] == (3,)


def test_shapes_of_predictions_and_forecasts(trained):
    model, obs, actions = trained
    samples = model.predict(obs[:3, :6], actions[:3, :12], num_samples=7)
    assert samples.shape == (7, 3, 7, 2)  # 12 actions, 5 in the prefix: H = 7
    assert model.predict(obs[:3, :6], actions[:3], horizon=2, num_samples=4).shape == (4, 3, 2, 2)
    means, log_probs = model.forecast(obs[:3, :6], actions[:3], obs[:3, 6:9], num_samples=5)
    assert means.shape == (3, 3, 2) and log_probs.shape == (3, 3) and torch.isfinite(log_probs).all()
    assert model.filter(obs[:3, :6], actions[:3, :5], num_samples=2).shape == (2, 3, 4)


def test_zoo_builds_it_from_a_data_set_with_actions_in_y(trained):
    _, obs, actions = trained
    assert ZOO["worldmodel"] is WorldModel and WorldModel.takes_labels
    dataset = datasets.Dataset(name="linear", split="train", kind="continuous", x=obs, y=actions)
    built = pplgen.models.build("worldmodel", dataset, z_dim=3)
    assert (built.obs_dim, built.act_dim, built.z_dim) == (2, 1, 3)
    assert torch.allclose(built.obs_loc, obs.mean((0, 1)), atol=1e-5)
    rebuilt = WorldModel(**built.config)
    rebuilt.load_state_dict(built.state_dict())
    no_actions = datasets.Dataset(name="linear", split="train", kind="continuous", x=obs)
    with pytest.raises(DataError, match="actions in the data set's y"):
        WorldModel.from_dataset(no_actions)


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_trajectories_are_named(trained):
    model, obs, actions = trained
    with pytest.raises(
        DataError, match=r"one action between two observations.*\(160, 21, 2\).*\(160, 21, 1\)"
    ):
        model.model(obs, torch.zeros(160, 21, 1))
    with pytest.raises(DataError, match="expected actions of 1 dimensions per step, got shape"):
        model.predict(obs[:, :5], torch.zeros(160, 10, 2))
    with pytest.raises(DataError, match=r"actions \(N, 4 \+ H, 1\).*got \(160, 4, 1\)"):
        model.predict(obs[:, :5], actions[:, :4])
    with pytest.raises(DataError, match="horizon must lie in 1 .. 6"):
        model.predict(obs[:, :5], actions[:, :10], horizon=7)
    nan = obs.clone()
    nan[3, 2, 0] = float("nan")
    with pytest.raises(
        DataError, match="observations contain NaN or infinite values \\(first in sequence 3\\)"
    ):
        model.predict(nan[:, :5], actions)
    with pytest.raises(DataError, match="NaN"):
        pplgen.fit(model.model, (nan, actions), model.guide, epochs=1)
    with pytest.raises(DataError, match="as a float tensor"):
        model.model(obs.long(), actions)


def test_baselines_refuse_to_forecast_before_fitting_or_past_their_horizon(trained):
    _, obs, actions = trained
    with pytest.raises(ModelError, match="call fit"):
        LinearDynamics().forecast(obs[:, :5], actions, obs[:, 5:7])
    with pytest.raises(DataError, match="fitted for horizons up to 2"):
        CopyLast().fit(obs, actions, 2).forecast(obs[:, :5], actions, obs[:, 5:9])
    with pytest.raises(DataError, match=r"forecast_scores: expected .*\(N, 12, D\)"):
        forecast_scores(CopyLast().fit(obs, actions, 2), obs, actions, prefix=9, horizons=(1, 2))


def test_windows_and_the_system_are_seeded(system):
    first, again = system.simulate(3, 9, seed=5), system.simulate(3, 9, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    obs, actions = windows(*first, steps=3, stride=3)
    assert obs.shape == (9, 4, 2) and torch.equal(obs[1], first[0][0, 3:7])
    assert torch.equal(actions[1], first[1][0, 3:6])


def test_planner_steers_a_known_linear_system_to_the_origin(system):
    step = lambda x, a: x @ system.A.T + a @ system.B.T
    reward = lambda x, a: -x.pow(2).sum(-1)
    settings = MPCSettings(horizon=8, candidates=100, iterations=3, elites=10, history=0)
    policy = MPCPolicy(KnownDynamics(step), reward, [-2.0], [2.0], settings, seed=0)
    x = torch.tensor([3.0, -2.0])
    for _ in range(30):
        x = step(x, torch.as_tensor(policy(x.numpy())))
    assert x.norm() < 0.5


# -- Gymnasium --------------------------------------------------------------------------------------------
def test_collecting_without_gymnasium_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r'pip install "pplgen\[control\]"') as caught:
        datasets.collect("Pendulum-v1", 1, 5)
    assert isinstance(caught.value, pplgen.errors.PplgenError)


def test_pendulum_trajectories_reward_and_dynamics():
    pytest.importorskip("gymnasium")
    from pplgen.data.control import pendulum_reward, pendulum_step

    obs, actions, rewards = datasets.collect("Pendulum-v1", num_episodes=3, steps=20, seed=4)
    assert obs.shape == (3, 21, 3) and actions.shape == (3, 20, 1) and rewards.shape == (3, 20)
    assert torch.equal(obs, datasets.collect("Pendulum-v1", 3, 20, seed=4).obs)
    assert not torch.equal(obs, datasets.collect("Pendulum-v1", 3, 20, seed=5).obs)
    assert torch.allclose(pendulum_reward(obs[:, :-1], actions), rewards, atol=1e-4)
    assert torch.allclose(pendulum_step(obs[:, :-1], actions), obs[:, 1:], atol=1e-4)
    test = datasets.load("pendulum", "test", num_episodes=2, steps=10)
    assert test.x.shape == (2, 11, 3) and test.y.shape == (2, 10, 1) and test.kind == "continuous"


def test_cartpole_actions_are_one_hot_and_short_episodes_are_refused():
    pytest.importorskip("gymnasium")
    _, actions, _ = datasets.collect("CartPole-v1", num_episodes=2, steps=5, seed=0)
    assert actions.shape == (2, 5, 2) and torch.equal(actions.sum(-1), torch.ones(2, 5))
    with pytest.raises(DataError, match="lasted 400 steps"):
        datasets.collect("CartPole-v1", num_episodes=1, steps=400, seed=0, max_tries=2)


def test_world_model_plans_a_pendulum_episode():
    pytest.importorskip("gymnasium")
    from pplgen.data.control import PENDULUM_MAX_TORQUE, pendulum_reward

    obs, actions, _ = datasets.collect("Pendulum-v1", num_episodes=4, steps=10, seed=0)
    model = WorldModel.from_data(obs, actions, **SMALL)
    settings = MPCSettings(horizon=5, candidates=20, iterations=2, elites=4, history=3, particles=2)
    policy = MPCPolicy(model, pendulum_reward, [-PENDULUM_MAX_TORQUE], [PENDULUM_MAX_TORQUE], settings)
    _, planned, rewards = datasets.collect("Pendulum-v1", num_episodes=1, steps=6, policy=policy, seed=1)
    assert planned.shape == (1, 6, 1) and planned.abs().max() <= PENDULUM_MAX_TORQUE
    assert len(policy.actions) == 6 and torch.isfinite(rewards).all()
