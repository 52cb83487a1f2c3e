"""Exceptions raised for bad input.

Every error pplgen raises for something the user passed is a :class:`PplgenError`, and also a subclass
of the built-in exception that fits (``ValueError``, ``TypeError``, ``FileNotFoundError``), so code that
already catches those keeps working. Messages name the site or argument, what was expected and what came.
The command line prints them as one line and exits with status 2.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = [
    "CheckpointError",
    "CodecError",
    "DataError",
    "DataFileError",
    "GuideError",
    "ImplicitLikelihoodError",
    "MissingDependencyError",
    "ModelError",
    "PplgenError",
    "SettingsError",
    "UnknownNameError",
    "data_scanned",
    "program_errors",
    "program_name",
    "support_scans",
]


class PplgenError(Exception):
    """Base class of every error pplgen raises for bad input.

    Example:
        >>> import pplgen
        >>> try:
        ...     pplgen.data.load("mnist")
        ... except PplgenError as err:
        ...     print(type(err).__name__, isinstance(err, ValueError))
        UnknownNameError True
    """


class DataError(PplgenError, ValueError):
    """The data do not fit the program: NaN or inf, wrong shape or dtype, values outside a support.

    Example:
        >>> import pyro, torch, pyro.distributions as dist, pplgen
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Bernoulli(0.5), obs=x)
        >>> try:
        ...     pplgen.fit(model, torch.tensor([0.0, 1.0, float("nan")]), epochs=1, progress=False)
        ... except DataError as err:
        ...     print(err)
        data contains NaN or infinite values in 1 of 3 data points (first at index 2); remove ...
    """


class DataFileError(PplgenError, FileNotFoundError):
    """A data file is missing from the data directory.

    Example:
        >>> import tempfile, pplgen
        >>> with tempfile.TemporaryDirectory() as root:
        ...     try:
        ...         pplgen.data.load("binarized_mnist", root=root)
        ...     except DataFileError as err:
        ...         print(isinstance(err, FileNotFoundError), "which was not found" in str(err))
        True True
    """


class ModelError(PplgenError, ValueError):
    """The model program is unusable: it raises, has no sample sites, or does not suit the request.

    Example:
        >>> import torch, pplgen
        >>> def no_sites(x):
        ...     return x.sum()
        >>> try:
        ...     pplgen.inspect(no_sites, torch.zeros(2))
        ... except ModelError as err:
        ...     print(err)
        the program '...no_sites' has no sample sites: there is nothing to inspect
    """


class GuideError(PplgenError, ValueError):
    """The guide does not match the model: a latent site is missing from one of them.

    Example:
        >>> import pyro, torch, pyro.distributions as dist, pplgen
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def guide(x):  # samples nothing
        ...     pass
        >>> try:
        ...     pplgen.fit(model, torch.zeros(4), guide, epochs=1, progress=False)
        ... except GuideError as err:
        ...     print(err)
        the guide '...guide' has no site for the model's latent 'z': every latent of the model needs a guide
        site of the same name
    """


class ImplicitLikelihoodError(PplgenError, NotImplementedError):
    """A likelihood was asked of a simulated (:class:`pplgen.Implicit`) site.

    Example:
        >>> import torch, pplgen
        >>> try:
        ...     pplgen.Implicit(torch.zeros(3)).log_prob(torch.zeros(3))
        ... except ImplicitLikelihoodError as err:
        ...     print(isinstance(err, NotImplementedError), str(err).split(";")[0])
        True an Implicit site has a simulated value and no likelihood
    """


class UnknownNameError(PplgenError, ValueError):
    """A name (zoo model, data set, family) that pplgen does not know.

    Example:
        >>> import pplgen
        >>> try:
        ...     pplgen.data.load("mnist")
        ... except UnknownNameError as err:
        ...     print(err)
        unknown data set 'mnist'; known data sets: digits, ring8, ...
    """


class SettingsError(PplgenError, ValueError):
    """A training setting outside its range: a count of epochs or points that is not a positive whole
    number, a learning rate that is negative, a fraction outside [0, 1).

    Example:
        >>> import pplgen, torch
        >>> try:
        ...     pplgen.fit(lambda x: None, torch.zeros(4, 2), epochs=0)
        ... except SettingsError as err:
        ...     print(err)
        epochs should be a whole number, at least 1; got 0
    """


class CheckpointError(PplgenError, ValueError):
    """A checkpoint is corrupted, truncated, or does not match the program it is loaded into.

    Example:
        >>> import os, tempfile, pplgen
        >>> def model(x): ...
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "fit.pt")
        ...     with open(path, "wb") as file:
        ...         _ = file.write(b"not a checkpoint")
        ...     try:
        ...         pplgen.FitResult.load(path, model, device="cpu")
        ...     except CheckpointError as err:
        ...         print(str(err).split(" (")[0])
        checkpoint .../fit.pt is corrupted, truncated or unsafe to load
    """


class CodecError(PplgenError, ValueError):
    """Compressed bytes that are truncated, corrupted, or decoded with a model they were not made with.

    Example:
        >>> import pplgen
        >>> try:
        ...     pplgen.codec.decompress(None, b"garbage")
        ... except CodecError as err:
        ...     print(err)
        these bytes were not made by pplgen.codec.compress (no pplgen header)
    """


class MissingDependencyError(PplgenError, ImportError):
    """An optional dependency that a feature needs is not installed; the message says how to install it.

    Example:
        Collecting trajectories needs gymnasium; here it is hidden as if it were not installed:

        >>> import sys
        >>> from unittest import mock
        >>> import pplgen
        >>> with mock.patch.dict(sys.modules, {"gymnasium": None}):
        ...     try:
        ...         pplgen.data.collect("Pendulum-v1", num_episodes=1, steps=5)
        ...     except MissingDependencyError as err:
        ...         print(isinstance(err, ImportError), err)
        True collecting trajectories needs gymnasium, which is not installed: pip install "pplgen[control]"
    """


def program_name(fn: Callable) -> str:
    """A readable name for a program: ``module.qualname`` of a function or a bound method.

    Example:
        >>> import pplgen
        >>> program_name(pplgen.inspect)
        'pplgen.graph.inspect'
        >>> program_name(pplgen.models.VAE(4, z_dim=2, hidden=8).model)
        'pplgen.models.vae.VAE.model'
    """
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "__main__" else name


_SCANNED = contextvars.ContextVar("pplgen_data_scanned", default=False)


@contextlib.contextmanager
def data_scanned() -> Iterator[None]:
    """Within this block the data were checked whole beforehand, so programs may skip their per-batch
    support scans (:func:`support_scans`): the training loop runs its steps here, after
    ``check_observations`` has scanned every training and validation point.

    Example:
        >>> with data_scanned():
        ...     inside = support_scans()
        >>> inside, support_scans()
        (False, True)
    """
    token = _SCANNED.set(True)
    try:
        yield
    finally:
        _SCANNED.reset(token)


def support_scans() -> bool:
    """Whether a program should scan a batch for values outside its support: False inside
    :func:`data_scanned`, where the scan was done once for all the data (and would cost a pass over the
    batch and, on a GPU, a wait for it at every step).

    Example:
        >>> support_scans()  # outside a training loop
        True
    """
    return not _SCANNED.get()


@contextlib.contextmanager
def program_errors(fn: Callable, role: str = "model") -> Iterator[None]:
    """Turn an exception raised inside a user's program into a :class:`ModelError` naming the program.

    pplgen's own errors pass through unchanged, so a precise message raised deeper is not hidden; that
    holds too when a library wrapped one on its way out (Pyro re-raises an error from ``log_prob`` as a
    plain ``ValueError`` whose ``__cause__`` is the original), so the first pplgen error found in the
    exception's chain of causes and contexts is raised instead of a ModelError.

    Args:
        fn: the program whose call the block wraps (named in the message).
        role: what the program is, ``"model"`` or ``"guide"``.

    Raises:
        ModelError: the block raised an exception that is not, and does not wrap, a :class:`PplgenError`.

    Example:
        >>> def guide(x):
        ...     return {}["z"]
        >>> try:
        ...     with program_errors(guide, role="guide"):
        ...         guide(None)
        ... except ModelError as err:
        ...     print(err)
        the guide program '...guide' raised KeyError: 'z'
        >>> try:  # pplgen's own errors pass through unchanged
        ...     with program_errors(guide):
        ...         raise DataError("bad data")
        ... except PplgenError as err:
        ...     print(type(err).__name__, err)
        DataError bad data
    """
    try:
        yield
    except PplgenError:
        raise
    except Exception as exc:  # the user's program can raise anything
        wrapped = _pplgen_error_in_chain(exc)
        if wrapped is not None:
            # The wrapper adds nothing the user needs; the original keeps its own traceback and cause.
            raise wrapped from wrapped.__cause__
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"the {role} program {program_name(fn)!r} raised {type(exc).__name__}: {message}"
        ) from exc


def _pplgen_error_in_chain(exc: BaseException) -> PplgenError | None:
    """The first :class:`PplgenError` among the causes and contexts of ``exc``, as a traceback shows them."""
    seen: set[int] = set()
    link = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, PplgenError):
            return link
        link = (
            link.__cause__
            if link.__cause__ is not None
            else (None if link.__suppress_context__ else link.__context__)
        )
    return None
