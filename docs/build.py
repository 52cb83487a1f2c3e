"""Build pplgen's documentation site: execute the tutorials as notebooks, then Sphinx in strict mode.

    python docs/build.py                  # tutorials at their smoke length; site in docs/_build/html
    python docs/build.py --full           # tutorials at full length (a GPU is advisable)
    python docs/build.py --notebooks DIR  # reuse notebooks executed before (DIR/NN_name.ipynb)

The hand-written pages are the Markdown files beside this script. The builder stages them in
``OUT/src`` with the pages it generates: the executed tutorials, one API page per public namespace (from
the docstrings, by autodoc), and the benchmark results rendered from ``benchmarks/results.jsonl``. Sphinx
then runs with warnings as errors and every cross-reference checked (``-W -n``), so a broken link or a
reference to a name that does not exist fails the build.
"""

import argparse
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))

# The public namespaces, in the order their pages appear; a name re-exported by several is documented
# under the first.
NAMESPACES = [
    ("pplgen", "The top-level functions: inspect, fit, evaluate, sample."),
    ("pplgen.data", "Data sets: embedded, from files, and collected from environments."),
    ("pplgen.distributions", "Distributions for model programs: autoregressive, flows, implicit."),
    ("pplgen.nn", "Networks the zoo and the distributions are built from."),
    ("pplgen.models", "The model zoo: each model a Pyro program with its guide."),
    ("pplgen.graph", "Reading a program's structure as a graph."),
    ("pplgen.render", "Drawing a program's graph."),
    ("pplgen.guides", "The automatic amortised guide."),
    ("pplgen.infer", "Trainers, objectives and the training loop."),
    ("pplgen.evaluate", "Likelihood estimators, sample metrics, anomaly scores, probes."),
    ("pplgen.diagnostics", "PSIS, LOO, ArviZ and NUTS beside VI."),
    ("pplgen.codec", "Lossless compression with a model: rANS and bits back."),
    ("pplgen.control", "Forecast baselines and model-predictive control."),
    ("pplgen.plot", "Pictures, each a matplotlib Figure."),
    ("pplgen.errors", "The errors pplgen raises."),
]


def execute_tutorial(path: Path, out_dir: Path, smoke: bool = True, timeout: int = 1800) -> Path:
    """Run one tutorial as a notebook (jupytext to nbformat, executed by nbclient) and save it.

    Raises ``nbclient.exceptions.CellExecutionError`` naming the cell and the error when a cell fails.
    """
    import jupytext
    import nbclient
    import nbformat

    notebook = jupytext.read(path)
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if smoke:
        env["CI"] = "true"
    saved = {key: os.environ.get(key) for key in ["CI", "MPLBACKEND"]}
    os.environ.pop("CI", None)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        with tempfile.TemporaryDirectory() as cwd:  # whatever a tutorial writes is left in a scratch folder
            start = time.perf_counter()
            client = nbclient.NotebookClient(
                notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": cwd}}
            )
            client.execute()
            seconds = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    length = "its short smoke length (`CI` set), as in the tests" if smoke else "full length"
    note = f"*This page was executed at {length}, in {seconds:.0f} s on {_device()}.*"
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(note))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.ipynb"
    nbformat.write(notebook, target)
    return target


def _device() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "the CPU"


def _entries(qualname: str, obj) -> list[str]:
    """The autodoc directive for one object, under the dotted name it is documented by."""
    if inspect.isclass(obj):
        directive = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return [f".. {directive}:: {qualname}", "   :members:", ""]
    if callable(obj):
        return [f".. autofunction:: {qualname}", ""]
    shown = [] if isinstance(obj, (str, tuple)) else ["   :no-value:"]  # a dict of classes reads badly
    return [f".. autodata:: {qualname}", *shown, ""]


def _defined_in(package, name: str, obj) -> str:
    """Where a constant re-exported by ``package`` is assigned: the ``#:`` comment on it is its docs."""
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if getattr(module, name, None) is obj and re.search(
            rf"^{name}\b.*=", inspect.getsource(module), re.M
        ):
            return module.__name__
    return package.__name__


def _exports(module, documented: set[int]) -> list[str]:
    """Entries for the names in ``module.__all__`` that no earlier page documents."""
    lines = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj) or id(obj) in documented:
            continue
        documented.add(id(obj))
        where = module.__name__ if inspect.isclass(obj) or callable(obj) else _defined_in(module, name, obj)
        lines += _entries(f"{where}.{name}", obj)
    return lines


def _api_page(namespace: str, summary: str, documented: set[int]) -> str:
    """One namespace's page: its docstring and exports, then what its modules export besides.

    The modules' own exports are the building blocks that the namespace's signatures name (a
    network's state, a base class); they are documented so that every reference resolves.
    """
    package = importlib.import_module(namespace)
    lines = [f"# `{namespace}`", "", summary, "", "```{eval-rst}", f".. automodule:: {namespace}", ""]
    lines += [*_exports(package, documented), "```", ""]
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        module = importlib.import_module(f"{namespace}.{info.name}")
        if namespace == "pplgen" or not hasattr(module, "__all__"):
            continue
        entries = _exports(module, documented)
        if entries:
            name = module.__name__
            lines += [f"## `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "", *entries, "```", ""]
    return "\n".join(lines)


def _results_page() -> str:
    spec = importlib.util.spec_from_file_location("render", ROOT / "benchmarks" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render.results_markdown(render.read_results())


def stage(notebooks: Path, src: Path) -> None:
    """Lay out the site's sources in ``src``: hand-written pages, executed tutorials, API and results."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(HERE, src, ignore=shutil.ignore_patterns("_build", "__pycache__", "build.py"))
    tutorials = src / "tutorials"
    tutorials.mkdir()
    names = []
    for path in TUTORIALS:
        executed = notebooks / f"{path.stem}.ipynb"
        if not executed.exists():
            raise FileNotFoundError(f"tutorial {path.name} has not been executed: no {executed}")
        shutil.copy(executed, tutorials / executed.name)
        names.append(path.stem)
    toctree = "\n".join(names)
    (tutorials / "index.md").write_text(
        "# Tutorials\n\nEach tutorial is a notebook kept as a Python file in `tutorials/`, executed when the"
        " site is built. Open the file with Jupyter (jupytext reads it as a notebook) or run it with"
        " `python`. Setting `CI` in the environment runs it at its short smoke length, as the tests do;"
        " the pages here show the length the site was built with, said at the top of each.\n\n"
        f"```{{toctree}}\n:maxdepth: 1\n\n{toctree}\n```\n"
    )
    api = src / "api"
    api.mkdir()
    documented: set[int] = set()
    for namespace, summary in NAMESPACES:
        (api / f"{namespace}.md").write_text(_api_page(namespace, summary, documented))
    entries = "\n".join(namespace for namespace, _ in NAMESPACES)
    (api / "index.md").write_text(
        "# API reference\n\nGenerated from the docstrings. Every public name is documented under the first"
        f" namespace that exports it.\n\n```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```\n"
    )
    (src / "results.md").write_text(_results_page())


def sphinx_build(src: Path, html: Path) -> tuple[int, str]:
    """Build the staged site ``src`` into ``html`` strictly; return Sphinx's exit status and warnings."""
    from sphinx.cmd.build import build_main

    log = html.parent / f"{html.name}-warnings.txt"
    args = ["-b", "html", "-W", "-n", "--keep-going", "-q", "-w", str(log), str(src), str(html)]
    with warnings.catch_warnings():  # Sphinx's and MyST's notices of their own coming API changes
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(sphinx|myst_parser)\b")
        status = build_main(args)
    return status, log.read_text() if log.exists() else ""


def build(notebooks: Path, out: Path) -> tuple[int, str]:
    """Stage and build the site into ``out/html``; return Sphinx's exit status and its warnings."""
    stage(notebooks, out / "src")
    return sphinx_build(out / "src", out / "html")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "_build", help="build folder (docs/_build)")
    parser.add_argument("--full", action="store_true", help="run the tutorials at full length")
    parser.add_argument("--notebooks", type=Path, help="a folder of tutorials executed before")
    args = parser.parse_args(argv)
    notebooks = args.notebooks
    if notebooks is None:
        notebooks = args.out / "notebooks"
        for path in TUTORIALS:
            print(f"executing {path.name} ({'full' if args.full else 'smoke'} length)", flush=True)
            execute_tutorial(path, notebooks, smoke=not args.full)
    status, log = build(notebooks, args.out)
    if status:
        print(log, file=sys.stderr)
    else:
        print(f"site built: {args.out / 'html' / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
