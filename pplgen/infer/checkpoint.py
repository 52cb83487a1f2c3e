"""Checkpoints: tensors and plain data only, written atomically, sealed with a digest, loaded without running
code."""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from pplgen.errors import CheckpointError

# what torch.load raises for a truncated, corrupted or foreign file (IndexError: a truncated zip record;
# KeyError and TypeError: a flipped byte in the pickled structure, found by flipping bytes at random)
UNREADABLE = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    OSError,
    IndexError,
    KeyError,
    TypeError,
)

__all__ = [
    "ResumeWarning",
    "VersionWarning",
    "compare_settings",
    "digest",
    "load_checkpoint",
    "program_config",
    "save_checkpoint",
    "versions",
    "write_failed",
]

FORMAT = "pplgen-checkpoint"
#: 2 adds the digest; version 1 files (written before it) are still read, with nothing to check them by.
VERSION = 2
READABLE_VERSIONS = (1, 2)


class VersionWarning(UserWarning):
    """A checkpoint was written by other versions of pplgen, Pyro or torch than the ones loading it."""


class ResumeWarning(UserWarning):
    """A run resumes from a checkpoint written with other fit settings (batch size, learning rate, seed,
    data, objective...): it will not end where an uninterrupted run would."""


#: The settings that make a checkpoint another program's: loading it into this one is refused.
PROGRAM_SETTINGS = ("family", "program_config")
#: The fit settings a resumed run may change without a word: more epochs, another device.
RESUMABLE_SETTINGS = ("epochs", "device")


def program_config(program: Any) -> dict | None:
    """The configuration of the module whose method ``program`` is (a zoo model's ``config``: the
    plain-data arguments that rebuild it), or None for a plain function.

    Example:
        >>> from pplgen.models import VAE
        >>> program_config(VAE(4, z_dim=2, hidden=8).model)["z_dim"]
        2
    """
    config = getattr(getattr(program, "__self__", None), "config", None)
    return dict(config) if isinstance(config, dict) else None


def _difference(key: str, before: Any, after: Any) -> str:
    """``key 1 (now 2)``; for dicts, each entry that differs (``program_config.z_dim 2 (now 3)``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
        return "; ".join(f"{key}.{k} {before.get(k)!r} (now {after.get(k)!r})" for k in keys)
    return f"{key} {before!r} (now {after!r})"


def compare_settings(written: dict, now: dict, path: str | os.PathLike, resuming: bool = True) -> None:
    """Compare the settings a checkpoint was written with (``pplgen.fit``'s, with the zoo model's
    ``program_config``) to the ones loading it.

    Raises:
        CheckpointError: the family or the model's configuration differs: the checkpoint is another
            program's.

    Warns:
        ResumeWarning: when ``resuming``, any other setting differs (except the epochs and the device).
    """
    described = {
        key: _difference(key, before, now[key])
        for key, before in written.items()
        if key in now and before != now[key]
    }
    program = [described[key] for key in PROGRAM_SETTINGS if key in described]
    if program:
        raise CheckpointError(
            f"checkpoint {path} was written for another program: {'; '.join(program)}; build the model "
            "with the configuration it was written with, or start a new run"
        )
    others = [text for key, text in described.items() if key not in RESUMABLE_SETTINGS]
    if resuming and others:
        warnings.warn(
            f"resuming from checkpoint {path}, written with {'; '.join(others)}: the run will not end where "
            "an uninterrupted one would",
            ResumeWarning,
            stacklevel=4,  # the caller of pplgen.fit (fit -> train -> here)
        )


def versions() -> dict[str, str]:
    """The versions of pplgen, Pyro and torch running now, as a checkpoint records them.

    Example:
        >>> sorted(versions())
        ['pplgen', 'pyro', 'torch']
    """
    found = {}
    for name, distribution in (("pplgen", "pplgen"), ("pyro", "pyro-ppl"), ("torch", "torch")):
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


def digest(state: Any) -> str:
    """A SHA-256 over everything a checkpoint holds: its structure, keys, numbers and strings, and every
    tensor's dtype, shape and bytes.

    ``torch.load`` does not check the CRCs of the zip records it reads, so a flipped byte inside a tensor
    loads silently as another value; the digest written with the checkpoint catches it.

    Example:
        >>> digest({"w": torch.zeros(2)}) == digest({"w": torch.zeros(2)})
        True
        >>> digest({"w": torch.zeros(2)}) == digest({"w": torch.tensor([0.0, 1e-30])})
        False
    """
    sha = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            sha.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
            if flat.numel():
                sha.update(flat.view(torch.uint8).numpy())
        elif isinstance(value, dict):
            sha.update(f"dict {len(value)};".encode())
            for key, item in value.items():
                feed(key)
                feed(item)
        elif isinstance(value, (list, tuple)):
            sha.update(f"{type(value).__name__} {len(value)};".encode())
            for item in value:
                feed(item)
        else:  # numbers, strings, None and the few other types weights_only reads: repr is exact
            sha.update(f"{type(value).__name__} {value!r};".encode())

    feed(state)
    return sha.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    The file is written beside its destination, as ``.NAME.tmp``, and renamed over it, so a crash
    mid-write leaves the previous checkpoint intact (and the next write reuses the partial file's name,
    so killed writes leave at most one behind); so does a failed write (a full disk), which raises
    :class:`~pplgen.errors.CheckpointError`. The versions of pplgen, Pyro and torch are recorded with it,
    and its :func:`digest`, which :func:`load_checkpoint` checks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "versions": versions(), **state}
    payload["digest"] = digest(payload)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_failed(path, exc, "checkpoint") from exc
        raise
    return path


def write_failed(path: Path, exc: OSError, what: str) -> CheckpointError:
    """The error for a failed write of ``path`` (a ``what``): whether the disk is full, and whether the
    previous file is kept."""
    full = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
    kept = f"the previous {what} is kept" if path.exists() else f"no earlier {what} exists"
    return CheckpointError(f"could not write {what} {path}{full}: {exc}; {kept}")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: a file that would run code is refused, and
    so is one whose contents do not match the :func:`digest` written with them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except UNREADABLE as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is corrupted, truncated or unsafe to load ({first})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pplgen checkpoint")
    if payload.get("version") not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('version')}, this pplgen reads {readable}"
        )
    if payload["version"] >= 2 and payload.pop("digest", None) != digest(payload):
        raise CheckpointError(
            f"checkpoint {path} is corrupted or was altered: its contents do not match the SHA-256 digest "
            "written with them"
        )
    written, now = payload.get("versions", {}), versions()
    differ = [
        f"{name} {written.get(name, 'unknown')} (now {now[name]})"
        for name in now
        if written.get(name) != now[name]
    ]
    if differ:
        warnings.warn(
            f"checkpoint {path} was written with {', '.join(differ)}: results may differ from the run that "
            "wrote it",
            VersionWarning,
            stacklevel=2,
        )
    return payload
