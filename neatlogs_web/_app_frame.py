"""Where a warning about the app's setup should point: the app's own line.

A framework may build our middleware long after the app's code named it
(Starlette and FastAPI build ``add_middleware()`` classes at the first call),
so a fixed ``stacklevel`` lands in the framework's file. The app's line is
the first frame outward that belongs neither to this package, nor to the
standard library, nor to an installed package.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import FrameType
from typing import Final

_PACKAGE: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _folders(*names: str) -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.abspath(paths[name]) + os.sep for name in names if paths.get(name)})


_INSTALLED: Final = _folders("purelib", "platlib", "scripts")
# Outside a virtual environment, site-packages sits inside the standard library's folder.
_STANDARD_LIBRARY: Final = _folders("stdlib", "platstdlib")


def _kind(filename: str) -> str:
    """Where a frame's file is: ``"package"`` (ours), ``"installed"``, ``"stdlib"``, ``"app"``."""
    if filename.startswith(_PACKAGE):
        return "package"
    if filename.startswith(_INSTALLED):
        return "installed"
    if filename.startswith(_STANDARD_LIBRARY):
        return "stdlib"
    return "app"


def app_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` called by this function's caller.

    When no frame is the app's (``uvicorn app:app``: Starlette builds the
    middleware inside the server's first call), the framework's line that
    built it, rather than the standard library's (``typing``) in between.
    """
    frame: FrameType | None = sys._getframe(1)
    level, first_outside, first_installed = 1, 0, 0
    while frame is not None:
        name = frame.f_code.co_filename
        kind = "stdlib" if name.startswith("<") else _kind(os.path.abspath(name))
        if kind == "app":
            return level
        if kind != "package":
            first_outside = first_outside or level
        if kind == "installed":
            first_installed = first_installed or level
        frame, level = frame.f_back, level + 1
    return first_installed or first_outside or 1
