"""What a documented ``pip install`` line brings, read from installed metadata.

The test environment holds every package such a line names, so the closure of
its requirements (extras and markers included) is known offline: a line that
forgets a package an example needs is caught without a fresh environment.
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

THIS_PACKAGE = "neatlogs-web"


def pip_install_arguments(text: str) -> list[list[str]]:
    """The requirement arguments of each line of ``text`` that is a ``pip install``."""
    found = []
    for line in text.splitlines():
        match = re.match(r"\s*(?:\S*/)?pip install (.*)", line)
        if match:
            words = shlex.split(match.group(1), comments=True)
            found.append([word for word in words if not word.startswith("-")])
    return found


def _as_requirement(argument: str) -> Requirement:
    """``.[django]`` (this checkout) or ``"neatlogs-web[django]"`` or ``uvicorn``."""
    local = re.fullmatch(r"\.(\[.*\])?", argument)
    return Requirement(THIS_PACKAGE + (local.group(1) or "") if local else argument)


def installed_by(arguments: list[str]) -> set[str]:
    """The canonical names of every distribution ``pip install <arguments>`` installs."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    pending = [_as_requirement(argument) for argument in arguments]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(name)
        for line in metadata.requires(name) or []:
            needed = Requirement(line)
            wanted = requirement.extras or {""}
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in wanted
            ):
                pending.append(needed)
    return names
