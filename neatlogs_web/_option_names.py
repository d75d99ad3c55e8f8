"""One way to refuse an option name nobody declared: a ``TypeError`` that names
who took it and suggests the closest known name (``cookie_nme`` -> ``cookie_name``)."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

__all__ = ["check_option_names"]


def check_option_names(owner: str, options: Mapping[str, object], known: Collection[str]) -> None:
    """Raise ``TypeError`` for the first of ``options`` that ``owner`` does not take."""
    unknown = sorted(options.keys() - set(known))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f": did you mean {close[0]!r}?" if close else ""
    raise TypeError(f"{owner} got an unknown option {name!r}{hint}")
