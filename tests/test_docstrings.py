"""Every public class and function has a docstring with an example; pytest's doctests run the examples."""

import importlib
import inspect

import pytest

from tests.test_tutorials import build


def _public():
    seen = set()
    for namespace, _ in build.NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{namespace}.{name}", obj


PUBLIC = list(_public())


def test_the_public_names_are_many():
    assert len(PUBLIC) > 150


@pytest.mark.parametrize("obj", [obj for _, obj in PUBLIC], ids=[name for name, _ in PUBLIC])
def test_public_name_has_an_example(obj):
    doc = inspect.getdoc(obj)
    assert doc, "no docstring"
    assert ">>>" in doc, "no example: add an Example: section that runs as a doctest"
