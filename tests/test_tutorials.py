"""The tutorials run as notebooks at their smoke length, and the documentation site builds strictly.

Each tutorial is converted by jupytext and executed by nbclient, as `docs/build.py` does for the site;
a cell that raises fails its test with the cell and the error named. The site is then built from the
executed notebooks with Sphinx's warnings as errors and every reference checked.
"""

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    """The folder the executed tutorials are written to, shared by the tutorial tests and the site."""
    return tmp_path_factory.mktemp("notebooks")


def _figures(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_every_tutorial_is_listed():
    names = [path.stem[:2] for path in build.TUTORIALS]
    assert names == [f"{i:02d}" for i in range(1, len(names) + 1)], names
    assert len(names) == 9


@pytest.mark.parametrize("path", build.TUTORIALS, ids=[p.stem for p in build.TUTORIALS])
def test_tutorial_runs_as_a_notebook(path, notebooks):
    notebook = nbformat.read(build.execute_tutorial(path, notebooks), as_version=4)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    assert "smoke length" in notebook.cells[1].source  # the page says how long it ran
    assert _figures(notebook) >= 2, "a tutorial shows its model, fit and results in pictures"
    assert any(cell.cell_type == "markdown" and "$" in cell.source for cell in notebook.cells), "maths"
    stderr = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("name") == "stderr"
    )
    assert "/pplgen/" not in stderr and "TqdmWarning" not in stderr, f"warnings on the page:\n{stderr}"


def test_site_builds_strictly(notebooks, tmp_path):
    for path in build.TUTORIALS:  # tutorials not executed above in this session (run alone, -k)
        if not (notebooks / f"{path.stem}.ipynb").exists():
            build.execute_tutorial(path, notebooks)
    status, log = build.build(notebooks, tmp_path)
    assert status == 0, log
    html = tmp_path / "html"
    for page in ["index", "getting-started", "concepts", "cli", "results", "architecture", "api/pplgen"]:
        assert (html / f"{page}.html").exists(), page
    for path in build.TUTORIALS:
        page = (html / "tutorials" / f"{path.stem}.html").read_text()
        assert "<img" in page, f"{path.stem}: the executed notebook's pictures are on its page"
    assert "--epochs" in (html / "cli.html").read_text()  # generated from the parser
    assert 'id="pplgen.fit"' in (html / "api" / "pplgen.html").read_text()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()  # maths renders offline


def test_strict_build_fails_on_a_broken_reference(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "docs" / "conf.py", src / "conf.py")
    (src / "index.md").write_text("# Broken\n\nSee {func}`pplgen.no_such_function` and [this](missing.md).\n")
    status, text = build.sphinx_build(src, tmp_path / "html")
    assert status != 0
    assert "pplgen.no_such_function" in text and "missing.md" in text
