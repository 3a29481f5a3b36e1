"""A module imported on first use, for modules the workflow reads while Snakemake parses it.

``np = lazy_module("numpy")`` at the top of a module makes ``np.asarray`` work as usual, while
importing that module (for a parse-time function such as a config check) does not import
numpy. The real module is imported, once, by the first attribute access.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _LazyModule:
    """Stands for a module until an attribute is read; then imports it and forwards."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        # import_module is a dictionary look-up once the module is in sys.modules
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r} (imported on first use)>"


def lazy_module(name: str) -> ModuleType:
    """A stand-in for ``import name`` that imports the module on first attribute access."""
    return _LazyModule(name)  # type: ignore[return-value]
