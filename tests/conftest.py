"""Test set-up shared by every test: fresh Pyro state, validation on, a fixed seed, the data directory."""

import os
from pathlib import Path

import matplotlib
import pyro
import pytest

matplotlib.use("Agg")

# Data that no package ships lies beside the checkout (../shared/data); tests read it through PPLGEN_DATA.
_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "PPLGEN_DATA" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["PPLGEN_DATA"] = str(_SHARED_DATA)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Cached artefacts (the feature classifier of the image metrics) go to a temporary directory, never
    the user's ~/.cache."""
    if "PPLGEN_CACHE" not in os.environ:
        os.environ["PPLGEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(autouse=True)
def fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def digits():
    """The embedded binarised digits: the training and validation splits (Datasets)."""
    from pplgen import data

    return data.load("digits", "train"), data.load("digits", "valid")


def needs_data_file(name: str):
    """Skip marker for tests that read a file from the data directory when it is absent."""
    root = os.environ.get("PPLGEN_DATA")
    present = root is not None and (Path(root) / name).is_file()
    return pytest.mark.skipif(not present, reason=f"{name} not found in PPLGEN_DATA")
