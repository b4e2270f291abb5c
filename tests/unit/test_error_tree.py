"""Every event-spine error lives in errors.py and is drawn in its docstring's tree."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from event_spine import errors

SRC = Path(errors.__file__).resolve().parent


def test_no_module_but_errors_py_subclasses_an_event_spine_error() -> None:
    tree_names = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.SpineError)
    }
    outside = []
    for path in SRC.rglob("*.py"):
        if path.name == "errors.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & tree_names:
                    outside.append(f"{path.relative_to(SRC)}:{node.name}")
    assert outside == [], "define these in errors.py (and draw them in its tree)"


def test_the_docstring_draws_every_error_and_marks_the_retriable_ones() -> None:
    lines = (errors.__doc__ or "").splitlines()
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, errors.SpineError):
            drawn = [line for line in lines if re.search(rf"[─ ]{name}\b", line)]
            assert drawn, f"{name} is not in the tree of errors.py"
            assert ("(retriable)" in drawn[0]) == value.retriable, drawn[0]


def test_retriable_is_what_the_tree_says() -> None:
    retriable = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.SpineError) and value.retriable
    }
    assert retriable == {
        "AuditPersistFailed",
        "BrokerUnavailable",
        "BufferFull",
        "ConcurrentUpdate",
        "DeliveryFailed",
        "StoreUnavailable",
    }
    assert errors.is_retriable(errors.StoreUnavailable("down"))
    assert not errors.is_retriable(errors.StorePermanentError("no"))
    assert not errors.is_retriable(TimeoutError())
