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


def _requirement_words(command: str) -> list[str]:
    """``-e ".[fastapi]" uvicorn`` as ``[".[fastapi]", "uvicorn"]``: options dropped."""
    return [word for word in shlex.split(command, comments=True) if not word.startswith("-")]


def pip_install_arguments(text: str) -> list[list[str]]:
    """The requirement arguments of each line of ``text`` that is a ``pip install``
    (after a ``$`` prompt, too)."""
    found = []
    for line in text.splitlines():
        match = re.match(r"\s*(?:\$\s+)?(?:\S*/)?pip install (.*)", line)
        if match:
            found.append(_requirement_words(match.group(1)))
    return found


def inline_pip_install_arguments(text: str) -> list[list[str]]:
    """The requirement arguments of each ``pip install`` in inline code (`...`)."""
    return [_requirement_words(command) for command in re.findall(r"`pip install ([^`]+)`", text)]


def extras_of_this_package(arguments: list[str]) -> set[str]:
    """The extras the arguments name for this package, from the clone or by name."""
    extras: set[str] = set()
    for argument in arguments:
        requirement = _as_requirement(argument)
        if canonicalize_name(requirement.name) == THIS_PACKAGE:
            extras |= requirement.extras
    return extras


def from_the_clone(argument: str) -> bool:
    """Whether ``argument`` installs this package from the clone (``.``, ``.[extras]``)."""
    return re.fullmatch(r"\.(\[.*\])?", argument) is not None


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
