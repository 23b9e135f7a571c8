"""Where the rest of a package lives when a logged model's ``code/`` copy of it was imported first.

A model's ``code/`` holds only the runtime modules of ``exporter`` and ``mlflow_flavor`` (see
docs/ARCHITECTURE.md), and MLflow puts it ahead on ``sys.path`` when it loads the model. In a process that goes on
to use the other layers (the registry, the tools), each package's ``__path__`` also lists the installed copy, so
that a module the ``code/`` copy lacks is found there: ``pkgutil.extend_path`` for installs on ``sys.path``, and
the import system's other finders for installs that are not (an editable install's finder).
"""

from __future__ import annotations

import importlib.machinery
import os
import pkgutil
import sys

__all__ = ["extend_package_path"]


def extend_package_path(path: list[str], name: str) -> list[str]:
    """``path`` (a package's ``__path__``) followed by every other place the package ``name`` is installed; for a
    sub-package, its folder in every location of its (extended) parent package."""
    extended = pkgutil.extend_path(path, name)
    parent, _, last = name.rpartition(".")
    if parent:
        for location in sys.modules[parent].__path__:
            folder = os.path.join(location, last)
            if os.path.isdir(folder) and folder not in extended:
                extended.append(folder)
        return extended
    for finder in sys.meta_path:
        if finder is importlib.machinery.PathFinder or not hasattr(finder, "find_spec"):
            continue
        try:
            spec = finder.find_spec(name, None)
        except Exception:  # a third-party finder that cannot answer for this name  # noqa: BLE001
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            if location not in extended:
                extended.append(location)
    return extended
