"""The generic name -> factory registry behind the retriever, generator and judge registries."""

import sys

import pytest

from rag_retrievers.errors import UnknownNameError
from rag_retrievers.name_registry import Registry


class Circle:
    def __init__(self, radius: float = 1.0) -> None:
        self.radius = radius


def test_register_as_call_and_as_decorator() -> None:
    shapes: Registry[type] = Registry("shape")
    assert shapes.register("circle", Circle) is Circle

    @shapes.register("square")
    class Square:
        pass

    assert shapes.get("circle") is Circle
    assert shapes.get("square") is Square
    assert shapes.names() == ["circle", "square"]
    assert list(shapes) == ["circle", "square"]
    assert "square" in shapes
    assert "triangle" not in shapes


def test_unknown_name_lists_valid_names_sorted() -> None:
    shapes: Registry[type] = Registry("shape", {"b": "collections:OrderedDict"})
    shapes.register("a", Circle)
    with pytest.raises(UnknownNameError, match=r"^unknown shape 'c'; valid names: a, b$") as info:
        shapes.get("c")
    assert info.value.valid == ["a", "b"]
    with pytest.raises(UnknownNameError, match="unknown shape 3"):
        shapes.get(3)  # type: ignore[arg-type]


def test_import_path_is_imported_on_first_get_only() -> None:
    module = "json.tool"
    sys.modules.pop(module, None)
    lazy: Registry[object] = Registry("tool", {"main": f"{module}:main"})
    assert module not in sys.modules
    first = lazy.get("main")
    assert module in sys.modules
    assert first is sys.modules[module].main
    assert lazy.get("main") is first


def test_register_replaces_and_unregister_removes() -> None:
    shapes: Registry[type] = Registry("shape", {"circle": "collections:OrderedDict"})
    shapes.register("circle", Circle)
    assert shapes.get("circle") is Circle
    shapes.unregister("circle")
    assert shapes.names() == []
    with pytest.raises(UnknownNameError, match="unknown shape 'circle'"):
        shapes.unregister("circle")
