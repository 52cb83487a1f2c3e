# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A world model for control
#
# An agent that can predict what its actions will do can plan: try action sequences in its head, keep
# the best, act. A **world model** is a generative model of observations *given actions*; it is
# learned from experience and then used as a simulator (Ha & Schmidhuber 2018; Hafner et al. 2019).
# This tutorial writes one as a Pyro program, a deep Markov model whose transitions read the action
# (Krishnan, Shalit & Sontag 2017), fits it by amortised SVI, checks its forecasts against simple
# baselines and against the exact answer on a linear system, and finally plans through it with
# model-predictive control to swing up Gymnasium's pendulum.

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch

import pplgen
from pplgen.control import CopyLast, KnownDynamics, LinearDynamics, MPCPolicy, MPCSettings, forecast_scores
from pplgen.data.control import pendulum_reward, pendulum_step

smoke = "CI" in os.environ  # a few epochs on a few trajectories in the tests; full length otherwise
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## State-space models
#
# A state-space model explains a sequence of observations $o_{0:T}$ under actions $a_{0:T-1}$ by a
# hidden state $z_t$ that carries everything the future needs to know about the past:
#
# $$z_0 \sim p(z_0), \qquad z_t \sim p(z_t \mid z_{t-1}, a_{t-1}), \qquad o_t \sim p(o_t \mid z_t),$$
#
# so $p(o_{0:T}, z_{0:T} \mid a) = p(z_0)\,p(o_0 \mid z_0) \prod_{t=1}^{T} p(z_t \mid z_{t-1}, a_{t-1})
# \,p(o_t \mid z_t)$. Two questions matter for control:
#
# * **filtering**: what is the state now, $p(z_K \mid o_{0:K}, a_{0:K-1})$?
# * **prediction**: what will we see if we act so, $p(o_{K+h} \mid o_{0:K}, a_{0:K+h-1})$? Start from
#   the filtered state and roll the transition forward under the planned actions, *open loop*: no
#   further observation corrects the path.
#
# When everything is linear and Gaussian, $z_t = A z_{t-1} + B a_{t-1} + w_t$ and $o_t = C z_t + v_t$,
# both have closed forms: the **Kalman filter** (Kalman 1960). With $w_t \sim \mathcal{N}(0, Q)$ and
# $v_t \sim \mathcal{N}(0, R)$, each step *predicts*
# $\mu^- = A\mu + B a$, $\Sigma^- = A \Sigma A^\top + Q$, then *updates* with the gain
# $G = \Sigma^- C^\top (C \Sigma^- C^\top + R)^{-1}$:
# $\mu = \mu^- + G(o_t - C\mu^-)$, $\Sigma = (I - G C)\Sigma^-$. Forecasting repeats the prediction
# step only, and the predictive density of $o_{K+h}$ is $\mathcal{N}(C\mu, C\Sigma C^\top + R)$.
# Nothing can forecast a linear-Gaussian system better, which makes it a good test bed.

# %% [markdown]
# ## The deep Markov model with actions, as a Pyro program
#
# A real system is not linear. The deep Markov model (DMM; Krishnan et al. 2017) keeps the structure
# and makes each piece a network: a gated transition
# $p(z_t \mid z_{t-1}, a_{t-1}) = \mathcal{N}(\mu_\theta(z_{t-1}, a_{t-1}),
# \mathrm{diag}\,\sigma_\theta(z_{t-1}, a_{t-1})^2)$ (a learned mix of a linear map and an MLP, which
# starts as the identity) and an emission $p(o_t \mid z_t) = \mathcal{N}(f_\theta(z_t),
# \mathrm{diag}\,\varsigma^2)$. `pplgen.models.WorldModel` holds these networks, standardises
# observations and actions with statistics of the training data, and has methods to filter and roll
# out. Here is its generative program written out; it has the same sites as the zoo's `world.model`.


# %%
def world_program(world):
    """The world model's generative program over observations (N, T + 1, D) and actions (N, T, A)."""

    def model(obs, actions):
        pyro.module("world", world)
        a = (actions - world.act_loc) / world.act_scale  # standardised actions
        N, steps = obs.shape[:2]
        with pyro.plate("data", N):
            z = pyro.sample("z_0", dist.Normal(obs.new_zeros(N, world.z_dim), 1.0).to_event(1))
            pyro.sample("o_0", world.emission(z), obs=obs[:, 0])
            for t in range(1, steps):
                loc, scale = world.transition(z, a[:, t - 1])  # reads the state and the last action
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
                pyro.sample(f"o_{t}", world.emission(z), obs=obs[:, t])

    return model


# %% [markdown]
# **Inference.** The posterior over the states has no closed form, so we fit by amortised SVI with the
# DMM's *structured inference network* (the zoo's `world.guide`): a GRU runs backwards over
# $(o_t, a_t)$, and a combiner gives $q(z_t \mid z_{t-1}, a_{t-1}, o_{t:T}, a_{t:T-1})$, the same
# dependencies as the true posterior. The ELBO sums a reconstruction term per step and a KL per step
# between $q(z_t \mid \cdot)$ and the transition.
#
# **Forecasts.** At the last step of a prefix the guide sees only the past, so its draw of $z_K$ is a
# draw from the (approximate) filtering distribution. `world.forecast` draws $S$ such states, rolls
# each forward through the transition under the given actions, and scores the future by the mixture of
# the $S$ emission densities, $\log \frac1S \sum_s \mathcal{N}(o_{K+h}; f(z^{(s)}_{K+h}),
# \varsigma^2)$.

# %% [markdown]
# ## A linear system whose answer we know
#
# `pplgen.data.LinearGaussianSystem.rotation()` is a damped rotation in the plane pushed by one random
# action: $x_{t+1} = 0.95\,R(0.3)\,x_t + B a_t + w_t$, observed with a little noise. Its `forecast` is
# the exact Kalman forecast above. We fit a world model to simulated trajectories and score it against
# that reference.

# %%
system = pplgen.data.LinearGaussianSystem.rotation()
num_train, steps = (40, 30) if smoke else (300, 30)
obs, actions = system.simulate(num_train, steps=steps, seed=0)  # (N, 31, 2) and (N, 30, 1)
test_obs, test_actions = system.simulate(20 if smoke else 200, steps=steps, seed=1)
print(f"linear system: {len(obs)} training and {len(test_obs)} test trajectories of {steps} steps")

pplgen.plot.trajectories(obs[:8], names=["x[0]", "x[1]"])
plt.suptitle("eight training trajectories of the linear system")
plt.show()

# %%
linear_world = pplgen.models.WorldModel.from_data(
    obs, actions, z_dim=4, transition_dim=32, emission_dim=32, rnn_dim=32
)
program = world_program(linear_world)
graph = pplgen.inspect(program, obs[:4, :4], actions[:4, :3])  # a short prefix: four steps to draw
print(graph.graph["family"], "-", graph.graph["reason"])
pplgen.draw(graph)
plt.title("the world model's program over four steps")
plt.show()

# %% [markdown]
# The graph is a chain: each state $z_t$ depends on $z_{t-1}$ (and on the action, a tensor argument
# rather than a random site, so not a node) and emits $o_t$; all inside the plate over trajectories.
# Family *latent*: `pplgen.fit` trains it by SVI with the guide we pass.

# %%
fit_options = {"lr": 3e-3, "seed": 0, "device": device, "progress": False}
linear_fit = pplgen.fit(
    program, (obs, actions), linear_world.guide, epochs=2 if smoke else 60, batch_size=20, **fit_options
)
linear_world.cpu()  # forecasts and planning below run on the CPU
pplgen.plot.training_curves(linear_fit.history, keys=["loss", "val_loss"])
plt.title("linear system: negative ELBO per trajectory")
plt.show()

# %% [markdown]
# ## Forecast scores
#
# `pplgen.control.forecast_scores` gives each predictor the first $K + 1$ observations and every
# action, and scores its forecast $h$ steps on by the **RMSE** of the predictive mean and the
# **negative predictive log-likelihood** in nats (lower is better for both; the second also judges the
# stated uncertainty). Baselines: `CopyLast` repeats the last observation (its error spread per horizon
# fitted on the training data); `LinearDynamics` fits $o_{t+1} = A o_t + B a_t + c$ by least squares
# and iterates it. On this system the linear fit is nearly the truth, so the exact Kalman forecast and
# it bound what the world model can reach.

# %%
prefix, horizon = 10, steps - 10
horizons = list(range(1, horizon + 1))
torch.manual_seed(0)
predictors = {
    "world model": lambda p, a, f: linear_world.forecast(p, a, f, num_samples=200),
    "Kalman (exact)": system,
    "linear least squares": LinearDynamics().fit(obs, actions),
    "copy last": CopyLast().fit(obs, actions, horizon=horizon),
}
linear_scores = {
    name: forecast_scores(p, test_obs, test_actions, prefix, horizons) for name, p in predictors.items()
}
for name, found in linear_scores.items():
    print(
        f"{name:22s}" + "".join(f"  h={h}: rmse {found[h]['rmse']:.3f}, nll {found[h]['nll_nats']:6.2f}"
                                for h in (1, 5, horizon))
    )  # fmt: skip


def plot_by_horizon(scores, title):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, found in scores.items():
        hs = sorted(found)
        axes[0].plot(hs, [found[h]["rmse"] for h in hs], marker=".", label=name)
        axes[1].plot(hs, [found[h]["nll_nats"] for h in hs], marker=".", label=name)
    axes[0].set_ylabel("RMSE of the predictive mean")
    axes[1].set_ylabel("negative log predictive density (nats)")
    for ax in axes:
        ax.set_xlabel("steps ahead h")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


plot_by_horizon(linear_scores, "linear system: forecasts h steps after the prefix")

# %% [markdown]
# What to look for: copy-last is poor beyond a step or two, because the state rotates away. A
# well-trained world model's curves approach the Kalman forecast's from above; the gap is what the
# networks and the approximate filter still miss (in the smoke setting, with two epochs, it is large).
# All errors grow with $h$: open-loop uncertainty accumulates, and the damping pulls every forecast
# towards the action-driven mean.

# %% [markdown]
# ## Pendulum
#
# Gymnasium's `Pendulum-v1`: a pole on a motor, observed as $(\cos\theta, \sin\theta, \dot\theta)$,
# pushed by a torque $u \in [-2, 2]$. `pplgen.data.load("pendulum")` collects episodes under the
# uniform random policy (seeded, so the same every time). The dynamics are nonlinear (gravity acts
# through $\sin\theta$) and the speed is clipped, so a linear model will not do.

# %%
train = pplgen.data.load("pendulum", num_episodes=20 if smoke else 400)  # x: (N, 51, 3), y: (N, 50, 1)
test = pplgen.data.load("pendulum", "test", num_episodes=10 if smoke else 50)
names = train.meta["observation_names"]
print(f"pendulum: {len(train.x)} training and {len(test.x)} test episodes of {train.y.shape[1]} steps")

world = pplgen.models.WorldModel.from_dataset(train, z_dim=8)
pendulum_fit = pplgen.fit(
    world_program(world),
    (train.x, train.y),
    world.guide,
    epochs=2 if smoke else 150,  # full length: a few minutes on a CPU
    batch_size=32,
    patience=20,  # stop when 20 epochs bring no better validation bound; keep the best
    **fit_options,
)
world.cpu()
pplgen.plot.training_curves(pendulum_fit.history, keys=["loss", "val_loss"])
plt.title("pendulum: negative ELBO per episode")
plt.show()

# %% [markdown]
# ### Filter, then roll out
#
# Give the model the first 20 steps of a test episode and all its actions, and let it imagine the next
# 30. `world.predict` draws $S$ filtered states and rolls each forward with the transition's noise and
# the emission's, so the spread of the draws is the model's predictive uncertainty.

# %%
prefix, horizon = 20, 30
torch.manual_seed(0)
draws = world.predict(test.x[:, : prefix + 1], test.y, horizon=horizon, num_samples=200)  # (S, N, H, 3)
steps_ahead = np.arange(prefix + 1, prefix + 1 + horizon)

fig, axes = plt.subplots(2, 3, figsize=(13, 5.5), sharex=True)
for row, episode in enumerate((0, 1)):
    low, mid, high = draws[:, episode].quantile(torch.tensor([0.05, 0.5, 0.95]), dim=0)
    for d, ax in enumerate(axes[row]):
        ax.plot(test.x[episode, : prefix + 1 + horizon, d], color="black", lw=1.2, label="truth")
        ax.fill_between(steps_ahead, low[:, d], high[:, d], alpha=0.3, color="tab:blue", label="90% band")
        ax.plot(steps_ahead, mid[:, d], color="tab:blue", label="median forecast")
        ax.axvline(prefix, color="gray", ls=":", lw=1)
        ax.set_title(f"test episode {episode}: {names[d]}", fontsize="medium")
axes[0, 0].legend(fontsize="small", loc="lower left")
for ax in axes[1]:
    ax.set_xlabel("step (dotted: end of the observed prefix)")
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for: the truth (black) should stay inside the band, and the band should widen with the
# horizon: the longer the open-loop rollout, the less the model can know. A band that is too narrow
# for where the truth goes is overconfidence, which the negative log-likelihood below punishes.
# `pplgen.plot.trajectories` shows single imagined futures beside the true one.

# %%
pplgen.plot.trajectories(draws[:12, 0], reference=test.x[:1, prefix + 1 : prefix + 1 + horizon], names=names)
plt.suptitle("twelve imagined futures of test episode 0 (blue) and what happened (black)")
plt.show()

# %%
torch.manual_seed(0)
pendulum_scores = {
    "world model": forecast_scores(
        lambda p, a, f: world.forecast(p, a, f, num_samples=200),
        test.x[:, : prefix + 1 + horizon],
        test.y[:, : prefix + horizon],
        prefix,
        list(range(1, horizon + 1)),
    ),
}
for name, baseline in {
    "linear least squares": LinearDynamics().fit(train.x, train.y),
    "copy last": CopyLast().fit(train.x, train.y, horizon=horizon),
}.items():
    pendulum_scores[name] = forecast_scores(
        baseline, test.x[:, : prefix + 1 + horizon], test.y[:, : prefix + horizon], prefix,
        list(range(1, horizon + 1)),
    )  # fmt: skip
for name, found in pendulum_scores.items():
    print(f"{name:22s}" + "".join(f"  h={h}: rmse {found[h]['rmse']:.3f}" for h in (1, 10, horizon)))
plot_by_horizon(pendulum_scores, "pendulum: forecasts h steps after the prefix")

# %% [markdown]
# ## Planning: model-predictive control with the cross-entropy method
#
# To act, search for the action sequence $a_{t:t+H-1}$ with the highest predicted return
# $\sum_{h} r(\hat o_{t+h+1}, a_{t+h})$, where $\hat o$ is the model's rollout from the filtered
# current state and $r$ is Pendulum's reward $-(\theta^2 + 0.1\,\dot\theta^2 + 0.001\,u^2)$ (upright
# and still is best). The **cross-entropy method** (Rubinstein 1999) searches by sampling: draw
# candidate sequences from $\mathcal{N}(m, \mathrm{diag}\,s^2)$ clipped to the bounds, score each
# through the model, refit $m, s$ to the best few (the elites), and repeat. Then take only the first
# action, observe, and plan again from the shifted plan: **model-predictive control** (receding
# horizon), which corrects the model's errors with every new observation. This is how Chua et al.
# (2018) and PlaNet (Hafner et al. 2019) act with learned models.
#
# `pplgen.control.MPCPolicy` does it through any object with `filter` and `rollout`; the world model
# has both. We compare three policies on the same starting states: uniform random torques, CEM
# through the learned world model, and CEM through the true dynamics (`KnownDynamics` with Pendulum's
# own equations), the best this planner can do.

# %%
if smoke:
    settings, mpc_steps, mpc_episodes = MPCSettings(horizon=10, candidates=50, iterations=2, elites=5), 30, 1
else:
    settings, mpc_steps, mpc_episodes = MPCSettings(), 200, 3  # 25 steps ahead, 300 candidates, 4 rounds
print(settings)
policies = {
    "random": None,
    "MPC, world model": MPCPolicy(world, pendulum_reward, [-2.0], [2.0], settings, seed=0),
    "MPC, true dynamics": MPCPolicy(
        KnownDynamics(pendulum_step), pendulum_reward, [-2.0], [2.0], settings, seed=0
    ),
}
runs = {
    name: pplgen.data.collect("Pendulum-v1", mpc_episodes, mpc_steps, policy=policy, seed=100)
    for name, policy in policies.items()
}
for name, run in runs.items():
    print(f"{name:20s} returns {[round(r, 1) for r in run.rewards.sum(1).tolist()]}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
for i, (name, run) in enumerate(runs.items()):
    returns = run.rewards.sum(1)
    axes[0].bar(i, returns.mean(), color=f"C{i}", alpha=0.7)
    axes[0].scatter(np.full(len(returns), i), returns, color="black", s=12, zorder=3)
    angle = torch.atan2(run.obs[0, :, 1], run.obs[0, :, 0]).abs()  # 0 upright, pi hanging down
    axes[1].plot(angle, color=f"C{i}", label=name)
axes[0].set_xticks(range(len(runs)), list(runs), fontsize="small")
axes[0].set_ylabel(f"return over {mpc_steps} steps (higher is better)")
axes[0].set_title("episode returns (bars: mean; dots: episodes)")
axes[1].set_xlabel("step")
axes[1].set_ylabel(r"$|\theta|$ (0 upright, $\pi$ hanging)")
axes[1].set_ylim(0, math.pi)
axes[1].set_title("the first episode under each policy")
axes[1].legend(fontsize="small")
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for: random torques leave the pendulum swinging through the bottom ($|\theta|$ back near
# $\pi$ again and again) and collect a low return. A planner that knows the dynamics pumps energy in,
# swings up, and holds the angle near zero. Planning through the learned world model can only do as well
# as its forecasts allow over the planning horizon; with a well-fitted model (the full setting) it swings
# up too, although it learned from random-policy data only and was never shown the pendulum upright for
# long. In the smoke setting (two epochs, thirty steps) there is no time to swing up.
#
# ## Summary
#
# * A state-space model separates a hidden state's dynamics under actions from how it is observed;
#   filtering estimates the state, and open-loop rollout under planned actions predicts the future.
# * For a linear-Gaussian system the Kalman filter gives the exact forecast; a deep Markov model with
#   actions learns to approach it, and does far better than copy-last or a linear fit on a nonlinear
#   pendulum's longer horizons when trained long enough. Score forecasts per horizon, by error and
#   by predictive log-likelihood.
# * Model-predictive control with the cross-entropy method turns a world model into a policy: plan,
#   take the first action, observe, replan.
