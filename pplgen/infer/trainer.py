"""What every trainer shares: parameters found from the program, an optimiser, the device."""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import pyro
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from pplgen.errors import CheckpointError, ModelError, PplgenError, program_errors
from pplgen.infer.checks import chunks
from pplgen.infer.distributed import Replicas
from pplgen.infer.params import ParamSet, modules_of, on_device

__all__ = ["LocalScale", "Trainer", "adam", "mean_metrics", "scaled"]


class LocalScale(Messenger):
    """Scale the sites inside the data plates by N/B, so a mini-batch estimates the whole data's objective.

    Global sites (outside every data plate) are counted once per step, local ones N/B times; dividing
    the result by N gives an unbiased per-data-point objective (Hoffman et al. 2013, stochastic VI).
    Plates that already subsample themselves (``subsample_size``) are left to Pyro.
    """

    def __init__(self, data_plates: tuple[str, ...], factor: float):
        super().__init__()
        self.data_plates = set(data_plates)
        self.factor = factor

    def _pyro_sample(self, msg):
        for frame in msg["cond_indep_stack"]:
            if frame.name in self.data_plates and frame.full_size in (None, frame.size):
                msg["scale"] = self.factor * msg["scale"]
                return


def mean_metrics(
    rows: list[tuple[int, dict[str, float | torch.Tensor]]], replicas: Replicas | None = None
) -> dict[str, float]:
    """Each metric's mean over the points of ``rows``, ``(points, metrics)`` per step. A skipped step
    (``skipped`` 1: its loss or a gradient was not finite) counts only in ``skipped``; a value that is not
    finite counts nowhere. A metric may be a 0-dim tensor still on the device, read once here rather than
    at every step. In a data-parallel run (``replicas``) the means are over every rank's points."""
    keys = list(rows[0][1]) if rows else []
    sums, points = [], []
    for k in keys:
        found = [(n, float(m[k])) for n, m in rows if k == "skipped" or not m.get("skipped")]
        found = [(n, v) for n, v in found if math.isfinite(v)]
        sums.append(sum(n * v for n, v in found))
        points.append(sum(n for n, _ in found))
    if replicas is not None:
        totals = replicas.sum_over_ranks(sums + points)
        sums, points = totals[: len(keys)], totals[len(keys) :]
    return {k: total / n if n else math.nan for k, total, n in zip(keys, sums, points, strict=True)}


def adam(params: list[torch.Tensor], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has one for these tensors (floating point, on the
    CPU or CUDA), else the default multi-tensor implementation."""
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def scaled(program: Callable, data_plates: tuple[str, ...], batch_size: int, num_data: int) -> Callable:
    """``program`` with its local sites counted ``num_data / batch_size`` times (see :class:`LocalScale`)."""
    return LocalScale(data_plates, num_data / batch_size)(program) if data_plates else program


class Trainer:
    """Base of the three trainers. Subclasses define ``loss`` (and may override ``step``).

    Attributes:
        monitor: the history key that early stopping watches (lower is better).
        betas: Adam's moment decay rates for the program's parameters.

    Example:
        A toy trainer that fits a Normal's mean by least squares; :meth:`setup` finds the parameter in
        the module whose method is the model and builds the optimiser:

        >>> import pyro.distributions as dist
        >>> class Shift(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.loc = torch.nn.Parameter(torch.zeros(()))
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("x", dist.Normal(self.loc, 1.0), obs=x)
        >>> class LeastSquares(Trainer):
        ...     def loss(self, batch, num_data):
        ...         site = poutine.trace(self.model).get_trace(*batch).nodes["x"]
        ...         return ((site["value"] - site["fn"].mean) ** 2).mean()
        >>> shift, x = Shift(), torch.tensor([1.0, 2.0, 3.0])
        >>> trainer = LeastSquares(shift.model, None, nx.DiGraph(), torch.device("cpu"), lr=0.1)
        >>> trainer.setup((x,), num_data=3)
        >>> [round(float(trainer.step((x,), num_data=3)["loss"]), 3) for _ in range(3)]  # (1+4+9)/3 first
        [4.667, 4.277, 3.907]
        >>> round(shift.loc.item(), 2), sorted(trainer.validate((x,), batch_size=2))
        (0.3, ['val_loss'])
    """

    monitor = "val_loss"
    betas = (0.9, 0.999)  # Adam's moment decay rates
    max_bad_steps = 20  # consecutive steps with a non-finite loss or gradient, skipped, before training stops
    remedy = "lower lr, or check the program's scales and the data"  # said when training diverges

    def __init__(
        self,
        model: Callable,
        guide: Callable | None,
        graph: nx.DiGraph,
        device: torch.device,
        *,
        lr: float = 1e-3,
    ):
        self.model = model
        self.guide = guide
        self.graph = graph
        self.device = device
        self.lr = lr
        self.data_plates = tuple(graph.graph.get("data_plates", ()))
        self.params = ParamSet()
        self.optimizer: torch.optim.Optimizer | None = None
        self.replicas: Replicas | None = None  # set for a data-parallel run (pplgen.infer.distributed)
        self.direct = False  # steps call the program bare (see run); decided in setup
        self.bad_steps = 0  # consecutive steps skipped for a non-finite loss or gradient

    # -- parameters -------------------------------------------------------------------------------
    def modules(self) -> list[tuple[str, torch.nn.Module]]:
        found, seen = [], set()
        for role, program in (("model", self.model), ("guide", self.guide)):
            for module in modules_of(program):
                if id(module) not in seen:
                    seen.add(id(module))
                    found.append((role, module))
        return found

    def run(self, fn: Callable, role_program: Callable | None = None):
        """Call ``fn`` on the device, collecting any parameters the program declares on the way.

        Once set up, a program found to run on the device by itself (``direct``) is called bare: no
        parameter capture, no default-device mode intercepting each tensor operation. A parameter store
        that grows during such a call (a parameter declared late) sends that call, and every later one,
        back through the plain path, which finds the new parameter.
        """
        if self.direct:
            known = len(pyro.get_param_store())
            with program_errors(role_program or self.model):
                result = fn()
            if len(pyro.get_param_store()) == known:
                return result
            self.direct = False
        with poutine.trace(param_only=True) as capture, on_device(self.device):
            with program_errors(role_program or self.model):
                result = fn()
        new = self.params.add_trace(capture.trace)
        if new and self.optimizer is not None:
            self.optimizer.add_param_group({"params": new})
        return result

    def setup(self, batch: tuple[torch.Tensor, ...], num_data: int) -> None:
        """Move modules to the device and find every parameter by running the loss once (no update)."""
        for role, module in self.modules():
            module.to(self.device)
            self.params.add_module(role, module)
        with torch.random.fork_rng(devices=self._rng_devices()), pyro.validation_enabled(False):
            self.run(lambda: self.loss(batch, num_data))
        if not list(self.params):
            raise ModelError(
                "nothing to train: neither the model nor the guide has a parameter (pyro.param, a PyroModule "
                "or pyro.module)"
            )
        self.optimizer = adam(list(self.params), self.lr, self.betas)
        if self.replicas is not None:  # every rank starts from rank 0's parameters
            self.replicas.broadcast(self.tensors())
        self.direct = self._runs_bare(batch, num_data)

    def _runs_bare(self, batch: tuple[torch.Tensor, ...], num_data: int) -> bool:
        """Whether the loss runs without ``on_device``: always on the default device (where that mode
        changes nothing), elsewhere when a trial run with the data on the device raises no error."""
        if self.device == torch.get_default_device():
            return True
        try:
            with torch.random.fork_rng(devices=self._rng_devices()), pyro.validation_enabled(False):
                with program_errors(self.model):
                    self.loss(batch, num_data)
        except (RuntimeError, PplgenError):  # e.g. a tensor made on the CPU inside the program
            return False
        return True

    def tensors(self) -> list[torch.Tensor]:
        """Every trained parameter and every module buffer: what must agree across ranks."""
        found = {id(p): p for p in self.params}
        for _, module in self.modules():
            found.update((id(t), t) for t in (*module.parameters(), *module.buffers()))
        return list(found.values())

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def train(self, mode: bool = True) -> None:
        for _, module in self.modules():
            module.train(mode)

    # -- one step ---------------------------------------------------------------------------------
    def scaled(self, program: Callable, batch_size: int, num_data: int) -> Callable:
        return scaled(program, self.data_plates, batch_size, num_data)

    def loss(self, batch: tuple[torch.Tensor, ...], num_data: int) -> torch.Tensor:
        """The objective per data point, differentiable."""
        raise NotImplementedError

    def step(self, batch: tuple[torch.Tensor, ...], num_data: int) -> dict[str, float]:
        loss = self.run(lambda: self.loss(batch, num_data))
        taken = self.update(loss, self.optimizer, guarded=True)
        self.count(taken, batch)
        # left on the device: the loop reads the epoch's mean once
        return {"loss": loss.detach(), "skipped": float(not taken)}

    def count(self, taken: bool, batch: tuple[torch.Tensor, ...]) -> None:
        """Count a skipped step; after ``max_bad_steps`` in a row stop with a :class:`ModelError` naming
        what is not finite on ``batch``."""
        self.bad_steps = 0 if taken else self.bad_steps + 1
        if self.bad_steps >= self.max_bad_steps:
            kind = type(self).__name__.removesuffix("Trainer").lower()
            raise ModelError(
                f"{kind} training diverged: {self.bad_steps} steps in a row had a non-finite loss or "
                f"gradient and were skipped; on the last batch {self.culprits(batch)}; {self.remedy}"
            )

    def culprits(self, batch: tuple[torch.Tensor, ...]) -> str:
        """What is not finite on ``batch``: parameters, then each site's log-density in the guide and the
        model (replayed on the guide's draw), named by site, role and term."""
        bad = [
            f"parameter {key!r} is not finite"
            for key, value in self.params.items()
            if not value.isfinite().all()
        ]
        try:
            with torch.no_grad(), pyro.validation_enabled(False):
                traces = []
                if self.guide is not None:
                    traces.append(("guide", poutine.trace(self.guide).get_trace(*batch)))
                replayed = poutine.replay(self.model, trace=traces[0][1]) if traces else self.model
                traces.append(("model", poutine.trace(replayed).get_trace(*batch)))
                for role, trace in traces:
                    trace.compute_log_prob()
                    for name, site in trace.nodes.items():
                        if site["type"] == "sample" and not torch.isfinite(site["log_prob"]).all():
                            term = (
                                "likelihood" if site["is_observed"] else "prior" if role == "model" else "q"
                            )
                            bad.append(f"the {role}'s {term} at site {name!r} is not finite")
        except Exception as exc:  # a program that fails outright is named by the error itself
            bad.append(f"the program raised {type(exc).__name__}: {exc}")
        return (
            "; ".join(bad)
            or "every parameter and log-density is finite (the objective's arithmetic or a gradient is not)"
        )

    def update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, *, guarded: bool = False) -> bool:
        """Backpropagate ``loss`` and step ``optimizer``; returns whether the step was taken.

        In a data-parallel run the gradients are first averaged across ranks. ``guarded`` skips the step
        (on every rank alike) when the loss or a gradient is not finite.
        """
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # a non-finite loss gives non-finite gradients, or ones the check below refuses
        params = [p for group in optimizer.param_groups for p in group["params"]]
        finite = True
        if self.replicas is not None:  # every rank learns of a bad loss anywhere, and skips with it
            finite = self.replicas.average_gradients(params, finite=not guarded or bool(torch.isfinite(loss)))
        if guarded and finite:  # one wait for the device: a tensor's norm is NaN or inf if an entry is (or
            grads = [p.grad for p in params if p.grad is not None]  # if the gradient is beyond ~1e19)
            norms = torch._foreach_norm(grads) if grads else []
            finite = bool(torch.isfinite(loss.detach() + sum(n.to(loss.dtype) for n in norms)))
        if not finite:
            optimizer.zero_grad(set_to_none=True)
            return False
        optimizer.step()
        return True

    @torch.no_grad()
    def evaluate(self, batch: tuple[torch.Tensor, ...], num_data: int) -> dict[str, float]:
        return {"val_loss": float(self.run(lambda: self.loss(batch, num_data)))}

    def validate(self, valid: tuple[torch.Tensor, ...], batch_size: int) -> dict[str, float]:
        """The validation metrics: ``evaluate`` on each batch in evaluation mode, averaged over points."""
        self.train(False)
        try:
            with pyro.validation_enabled(False):
                rows = [(len(b[0]), self.evaluate(b, len(valid[0]))) for b in chunks(valid, batch_size)]
        finally:
            self.train(True)
        return mean_metrics(rows)

    def finish(self) -> None:
        """Called once when training ends (after any restore of the best epoch)."""

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"params": self.params.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, *, optimizer: bool = True) -> None:
        self.params.load_state_dict(state["params"])
        if optimizer and "optimizer" in state:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:
                raise CheckpointError(f"optimizer state does not match the program: {exc}") from exc
