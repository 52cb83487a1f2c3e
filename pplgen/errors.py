"""Exceptions raised for bad input.

Every error pplgen raises for something the user passed is a :class:`PplgenError`, and also a subclass
of the built-in exception that fits (``ValueError``, ``TypeError``, ``FileNotFoundError``), so code that
already catches those keeps working. Messages name the site or argument, what was expected and what came.
The command line prints them as one line and exits with status 2.
"""

from __future__ import annotations

import contextlib
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
    "UnknownNameError",
    "program_errors",
    "program_name",
]


class PplgenError(Exception):
    """Base class of every error pplgen raises for bad input."""


class DataError(PplgenError, ValueError):
    """The data do not fit the program: NaN or inf, wrong shape or dtype, values outside a support."""


class DataFileError(PplgenError, FileNotFoundError):
    """A data file is missing from the data directory."""


class ModelError(PplgenError, ValueError):
    """The model program is unusable: it raises, has no sample sites, or does not suit the request."""


class GuideError(PplgenError, ValueError):
    """The guide does not match the model: a latent site is missing from one of them."""


class ImplicitLikelihoodError(PplgenError, NotImplementedError):
    """A likelihood was asked of a simulated (:class:`pplgen.Implicit`) site."""


class UnknownNameError(PplgenError, ValueError):
    """A name (zoo model, data set, family) that pplgen does not know."""


class CheckpointError(PplgenError, ValueError):
    """A checkpoint is corrupted, truncated, or does not match the program it is loaded into."""


class CodecError(PplgenError, ValueError):
    """Compressed bytes that are truncated, corrupted, or decoded with a model they were not made with."""


class MissingDependencyError(PplgenError, ImportError):
    """An optional dependency that a feature needs is not installed; the message says how to install it."""


def program_name(fn: Callable) -> str:
    """A readable name for a program: ``module.qualname`` of a function or a bound method."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "__main__" else name


@contextlib.contextmanager
def program_errors(fn: Callable, role: str = "model") -> Iterator[None]:
    """Turn an exception raised inside a user's program into a :class:`ModelError` naming the program.

    pplgen's own errors pass through unchanged, so a precise message raised deeper is not hidden; that
    holds too when a library wrapped one on its way out (Pyro re-raises an error from ``log_prob`` as a
    plain ``ValueError`` whose ``__cause__`` is the original), so the first pplgen error found in the
    exception's chain of causes and contexts is raised instead of a ModelError.
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
