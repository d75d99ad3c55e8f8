"""What the Flask and Django integrations read alike from the framework's settings.

Options come as ``NEATLOGS_<OPTION>`` settings (and, in Django, a
``NEATLOGS`` dict); an unknown name stops the app naming the closest known
one, as the middleware does. Without a key of our own, sessions are signed
with the framework's ``SECRET_KEY`` and verified with its
``SECRET_KEY_FALLBACKS`` too, so rotating the framework's key rotates ours.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from neatlogs_web._option_names import check_option_names

__all__ = ["PREFIX", "checked", "framework_keys", "prefixed_settings"]

#: Settings named ``NEATLOGS_<OPTION>`` set one option each.
PREFIX: Final = "NEATLOGS_"


def prefixed_settings(
    names: Iterable[str], has: Callable[[str], bool], get: Callable[[str], Any]
) -> dict[str, Any]:
    """The options set as ``NEATLOGS_<NAME>`` settings, by option name."""
    return {name: get(PREFIX + name.upper()) for name in names if has(PREFIX + name.upper())}


def checked(owner: str, options: Mapping[str, Any], known: Collection[str]) -> dict[str, Any]:
    """``options``, once every name is one ``owner`` takes (else ``TypeError``)."""
    check_option_names(owner, options, known)
    return dict(options)


def framework_keys(
    secret: str | bytes | None, fallbacks: str | bytes | Iterable[str | bytes] | None
) -> list[str | bytes] | None:
    """The framework's key and its rotation list as ours: the first signs, all verify."""
    if not secret:
        return None
    # One fallback given as a string is one key, not a key per character.
    if isinstance(fallbacks, str | bytes):
        return [secret, fallbacks]
    return [secret, *(fallbacks or ())]
