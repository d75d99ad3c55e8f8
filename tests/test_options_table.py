"""The middleware options are declared once (``SessionConfig``); the type
checkers' mirror and the README's table follow it."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest

from neatlogs_web._session.options import OPTION_NAMES, SessionConfig, SessionOptions
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_middleware_options() -> list[str]:
    text = README.read_text()
    section = text.split("### Middleware options", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_the_typed_mirror_lists_exactly_the_declared_options() -> None:
    assert set(SessionOptions.__optional_keys__) == OPTION_NAMES
    declared = typing.get_type_hints(SessionConfig)
    for name, annotation in typing.get_type_hints(SessionOptions).items():
        assert annotation == declared[name], name


def test_the_readme_table_lists_every_option_once() -> None:
    declared = [field.name for field in dataclasses.fields(SessionConfig)]
    documented = readme_middleware_options()
    assert len(documented) == len(set(documented))
    assert set(documented) == {*declared, "end_user"}


@pytest.mark.parametrize("middleware", [AsgiMiddleware, WsgiMiddleware])
def test_both_middlewares_take_secret_key_and_end_user_beside_the_options(
    middleware: type,
) -> None:
    parameters = inspect.signature(middleware).parameters
    assert list(parameters) == ["app", "secret_key", "end_user", "options"]
