"""A world model of Pendulum-v1 for model-based control: multi-step forecasts against copy-last and linear
baselines, and model-predictive swing-up against a random policy.

    OMP_NUM_THREADS=1 python benchmarks/worldmodel.py --minutes 8

The zoo's ``worldmodel`` (an action-conditioned deep Markov model) trains within ``--minutes`` on the
``pendulum`` training split (400 random-policy episodes of 50 steps) and keeps its best validation epoch.
Forecasts are scored on windows of the test split (50 episodes of 100 steps, seed 2): the first
``--prefix`` + 1 observations and every action are given, and the forecast ``h`` = 1, 10, 50 steps on is
scored by its RMSE (of the predictive mean) and its negative predictive log-likelihood in nats per
observation vector (the world model: log-mean-exp over ``--samples`` rolled-out draws of the emission
densities; the baselines: their Gaussian forecasts). No published figure exists for this set-up, so each
world-model figure is recorded beside the linear baseline's (and names copy-last's).

Then a CEM planner (``pplgen.control.MPCPolicy``) swings the pendulum up for ``--episodes`` episodes of 200
steps, planning through the world model with Pendulum's known reward function; its mean return is recorded
beside the uniform random policy's on the same initial states, and the same planner with the true
dynamics is recorded as the planner's ceiling. The default run takes about 12 minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import fit_settings, fit_within, pairs, record

from pplgen import data as datasets
from pplgen import models
from pplgen.control import CopyLast, KnownDynamics, LinearDynamics, MPCPolicy, MPCSettings, forecast_scores
from pplgen.data.control import PENDULUM_MAX_TORQUE, collect, pendulum_reward, pendulum_step

HORIZONS = (1, 10, 50)
TEST_STEPS = 100  # steps of a test episode: two windows of prefix 25 + horizon 50
MPC_STEPS = 200  # Pendulum-v1's episode length


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", "--budget-minutes", dest="minutes", type=float, default=8.0)
    p.add_argument("--max-epochs", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="world-model settings")
    p.add_argument("--prefix", type=int, default=25, help="actions in the forecast's given prefix")
    p.add_argument("--samples", type=int, default=200, help="rolled-out draws per forecast")
    p.add_argument("--episodes", type=int, default=5, help="MPC episodes (0: no MPC)")
    p.add_argument("--mpc-seed", type=int, default=100)
    p.add_argument("--no-record", action="store_true", help="print the figures without recording them")
    args = p.parse_args()
    args.train_rows = args.valid_rows = None
    args.data_option = []
    return args


def score_forecasts(model, train, test, args) -> dict:
    """Forecast scores of the world model and both baselines on windows of the test episodes."""
    obs, actions = datasets.windows(test.x, test.y, args.prefix + max(HORIZONS), stride=args.prefix)
    copy_last = CopyLast().fit(train.x, train.y, horizon=max(HORIZONS))
    linear = LinearDynamics().fit(train.x, train.y)
    model.cpu()
    torch.manual_seed(args.seed)
    world = lambda p, a, f: model.forecast(p, a, f, num_samples=args.samples)
    predictors = {"worldmodel": world, "copy_last": copy_last, "linear": linear}
    scores = {name: forecast_scores(f, obs, actions, args.prefix, HORIZONS) for name, f in predictors.items()}
    return {"scores": scores, "windows": len(obs)}


def returns_of(policy, args) -> list[float]:
    """The returns of ``args.episodes`` Pendulum episodes from the seeds of ``args.mpc_seed``."""
    episodes = collect("Pendulum-v1", args.episodes, MPC_STEPS, policy=policy, seed=args.mpc_seed)
    return episodes.rewards.sum(1).tolist()


def control(model, args) -> dict:
    """Mean returns of MPC through the world model, MPC through the true dynamics, and the random policy."""
    settings = MPCSettings()
    bounds = ([-PENDULUM_MAX_TORQUE], [PENDULUM_MAX_TORQUE])
    found = {}
    for name, dynamics in (
        ("worldmodel", model),
        ("true_dynamics", KnownDynamics(pendulum_step)),
        ("random", None),
    ):
        began = time.perf_counter()
        policy = (
            None if dynamics is None else MPCPolicy(dynamics, pendulum_reward, *bounds, settings, args.seed)
        )
        returns = returns_of(policy, args)
        found[name] = {
            "returns": returns,
            "mean": sum(returns) / len(returns),
            "wall_s": time.perf_counter() - began,
        }
        print(name, found[name], flush=True)
    found["settings"] = vars(settings)
    return found


def record_forecasts(forecasts: dict, common: dict, wall_s: float) -> None:
    scores = forecasts["scores"]
    for h in HORIZONS:
        for metric in ("rmse", "nll_nats"):
            linear, copy = scores["linear"][h][metric], scores["copy_last"][h][metric]
            for name, reference in (
                ("worldmodel", {"value": linear, "source": f"linear baseline, h={h}; copy-last {copy:.4g}"}),
                ("linear", {"value": copy, "source": f"copy-last baseline, h={h}"}),
                ("copy_last", {"value": None, "source": f"the persistence baseline itself, h={h}"}),
            ):
                settings = {**common, "horizon": h, "windows": forecasts["windows"], **scores[name][h]}
                record(
                    "worldmodel",
                    name,
                    "pendulum",
                    "test",
                    metric,
                    scores[name][h][metric],
                    reference,
                    wall_s,
                    settings,
                )


def record_control(found: dict, common: dict) -> None:
    random = found["random"]
    reference = {
        "value": random["mean"],
        "source": "uniform random policy, same initial states (mean return)",
    }
    for name in ("worldmodel", "true_dynamics"):
        settings = {
            **common,
            "planner": found["settings"],
            "returns": found[name]["returns"],
            "random_returns": random["returns"],
        }
        record(
            "worldmodel",
            f"{name}+mpc",
            "pendulum",
            "control",
            "episode_return",
            found[name]["mean"],
            reference,
            found[name]["wall_s"],
            settings,
        )


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    train, valid = datasets.load("pendulum", "train"), datasets.load("pendulum", "valid")
    test = datasets.load("pendulum", "test", steps=TEST_STEPS)
    model = models.build("worldmodel", train, **pairs(args.set))
    result, data, held_out, fit_s = fit_within(args, model, train, valid)
    common = fit_settings(args, model, result, data, held_out)
    common.update({"prefix": args.prefix, "samples": args.samples, "fit_s": round(fit_s, 1)})
    forecasts = score_forecasts(model, train, test, args)
    print(forecasts, flush=True)
    found = control(model, args) if args.episodes else None
    if args.no_record:
        return
    record_forecasts(forecasts, common, time.perf_counter() - began)
    if found is not None:
        record_control(found, {**common, "episodes": args.episodes, "mpc_seed": args.mpc_seed})


if __name__ == "__main__":
    main()
