"""Lazy package exports: a package's public names are imported from their submodule on first use.

So ``import deepsnow.features`` does not load torch and ``import deepsnow.metrics``
not scipy or scikit-learn; a name is only resolved when someone asks for it.
"""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(
    package: str, exports: dict[str, tuple[str, ...]], namespace: dict
) -> tuple[list[str], Callable, Callable]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of ``package`` (PEP 562).

    ``exports`` maps each submodule to the public names it defines; ``namespace``
    is the package's ``globals()``, whose own names ``__dir__`` lists too.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(where))

    return sorted(where), __getattr__, __dir__
