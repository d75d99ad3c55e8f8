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
_LIBRARIES: Final = tuple(
    {
        os.path.abspath(path) + os.sep
        for name in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")
        if (path := sysconfig.get_paths().get(name))
    }
)


def app_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` called by this function's caller.

    Falls back to the first frame out of this package when no frame is the
    app's (a server started with ``python -m``).
    """
    frame: FrameType | None = sys._getframe(1)
    level, first_outside = 1, 0
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE):
            first_outside = first_outside or level
            if not frame.f_code.co_filename.startswith("<") and not filename.startswith(_LIBRARIES):
                return level
        frame, level = frame.f_back, level + 1
    return first_outside or 1
