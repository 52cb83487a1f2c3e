"""Sphinx configuration of pplgen's documentation site; `docs/build.py` stages the sources and runs it."""

import re

import pplgen

project = "pplgen"
author = "the pplgen developers"
copyright = "2026, the pplgen developers"
release = pplgen.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: pages render with no network
    "sphinxarg.ext",
    "myst_nb",
]

# Markdown pages and executed notebooks. The tutorials are executed by build.py (or the tests) before
# Sphinx runs, so Sphinx only renders them.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "build.py", "conf.py"]

# The API reference: Google-style docstrings, type hints shown beside the parameters.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # a class's Attributes as a field list: a NamedTuple's fields are documented once
napoleon_custom_sections = [("References", "notes_style")]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": True}

# Strict: every cross-reference to pplgen must resolve. Names from other libraries cannot (the site is
# built with no network, so there is no intersphinx), and are let through by their package.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|pyro|numpy|np|nn|networkx|nx|matplotlib|arviz|az|scipy|gymnasium|tqdm)(\..*)?"),
    (r"py:.*", r"(collections|typing|pathlib|os|io|argparse|dataclasses|enum|abc|contextlib)\..*"),
    (r"py:class", r"(Tensor|Module|Figure|Axes|Path|Distribution|TorchDistribution|PyroModule|DiGraph)"),
    (r"py:class", r"(ExpandedDistribution|_DependentProperty)"),  # inherited from torch.distributions
    (r"py:class", r"(dist\..*|PyroELBO)"),  # aliases of Pyro's names in type hints
    (r"py:class", r"(optional|callable|array-like|iterable|Callable|Iterable|Iterator|Sequence|Mapping)"),
]

html_theme = "furo"
html_title = f"pplgen {release}"
html_static_path: list[str] = []


def _narrowed(found: list[str], keep) -> list[str]:
    """The names that ``keep`` accepts, unless that leaves none."""
    return [name for name in found if keep(name)] or found


def _resolve_pplgen(app, env, node, contnode):
    """Resolve a reference to a pplgen name by where it is documented.

    Docstrings name objects where they are defined (``pplgen.data.files.fsdd``) or relative to their
    own class or module (``explain_family``, ``generate_naive``); the site documents each under the
    public namespace that exports it (``pplgen.data.fsdd``), with its defining path as an alias. A
    reference that Sphinx cannot find resolves to the documented object of the same last name: the one
    in the referring class, else the one whose dotted tail matches, else the shallowest. When that is
    not one object, the reference stays unresolved and the strict build fails on it.
    """
    target = node["reftarget"].lstrip(".~")
    if node.get("refdomain") != "py" or ("." in target and not target.startswith("pplgen.")):
        return None  # another library's name
    kinds = {"module"} if node.get("reftype") == "mod" else {"class", "exception", "function", "data"}
    kinds |= set() if node.get("reftype") == "mod" else {"method", "attribute", "property"}
    domain = env.get_domain("py")
    last = target.rsplit(".", 1)[-1]
    found = [
        name
        for name, entry in domain.objects.items()
        if not entry.aliased and entry.objtype in kinds and name.endswith(f".{last}")
    ]
    scope = node.get("py:class")
    if scope:
        found = _narrowed(found, lambda name: f".{scope}." in f".{name}")
    found = _narrowed(found, lambda name: name.endswith(f".{target}"))
    depth = min((name.count(".") for name in found), default=0)
    found = _narrowed(found, lambda name: name.count(".") == depth)
    if len(found) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", found[0], node, contnode)


_NEW_REFERENCE = re.compile(r"^\S.*\(\d{4}[a-z]?\)")  # "Authors (year), ..." begins a reference


def _list_references(app, what, name, obj, options, lines):
    """Turn a docstring's ``References:`` section into a bulleted list, one paper an item.

    The first line, and a line that reads ``Authors (year)``, begin a paper; other lines continue the
    one before. This runs before napoleon parses the Google-style sections.
    """
    inside, first, indent = False, False, 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "References:":
            inside, first, indent = True, True, len(line) - len(line.lstrip()) + 4
            continue
        if inside and stripped and len(line) - len(line.lstrip()) < indent:
            inside = False
        if inside and stripped:
            body = line[indent:]
            begins = first or _NEW_REFERENCE.match(body)
            lines[i] = " " * indent + ("- " if begins else "  ") + body
            first = False


def setup(app):
    app.connect("missing-reference", _resolve_pplgen)
    app.connect("autodoc-process-docstring", _list_references, priority=400)
