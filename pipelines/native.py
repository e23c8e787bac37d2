"""The one way a C half is bound to its Python twin: once, at import, by name, with one signature.

The pipeline's hot loops (the filters' word split and counts, Gopher's n-gram counts, the exact key's
whitespace squeeze) are C extensions built at install, each optional: where one was not built, a Python twin
gives the same result, or raises the same error, from the same arguments. A module binds each kernel once,

    words = bind(_words, "words", _split_words)

and calls `words(text)` with no flag to branch on. `BOUND` lists every binding, so tests hold each C function
to its twin's parameters (C functions declare theirs in their docstring) and compare the two on edge cases.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Binding:
    """One kernel: its C function (None where the extension was not built) and its Python twin."""

    name: str  # "<extension module>.<function>"
    native: Callable | None
    twin: Callable


BOUND: list[Binding] = []


def extension(name: str) -> ModuleType | None:
    """Return the C extension module `name` (a full import path), or None where it was not built."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def bind(module: ModuleType | None, name: str, twin: F) -> F:
    """Return `module.name` (the C function), or `twin` where `module` is None; record the pair in `BOUND`."""
    native = getattr(module, name) if module is not None else None
    label = f"{module.__name__ if module is not None else twin.__module__}.{name}"
    BOUND.append(Binding(label, native, twin))
    return native if native is not None else twin
