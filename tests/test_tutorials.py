"""Every tutorial runs top to bottom (in its smoke setting: CI is set)."""

import runpy
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    runpy.run_path(str(path), run_name="__main__")
    plt.close("all")
