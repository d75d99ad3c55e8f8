"""The middleware options are declared once (``SessionConfig``); the type
checkers' mirror and the README's table follow it."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest

import neatlogs_web
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


def readme_init_options() -> list[str]:
    text = README.read_text()
    section = text.split("### `init()` options", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_init_options_are_declared_once_and_the_readme_table_lists_each() -> None:
    from neatlogs_web._tracing.init_options import OPTION_NAMES as INIT_OPTIONS
    from neatlogs_web._tracing.init_options import InitConfig, InitOptions

    documented = readme_init_options()
    assert len(documented) == len(set(documented))
    assert set(documented) == INIT_OPTIONS
    # The signature names the first options; the typed mirror lists the rest.
    first = [name for name in inspect.signature(neatlogs_web.init).parameters if name != "options"]
    assert set(first) | set(InitOptions.__optional_keys__) == INIT_OPTIONS
    # As written: OpenTelemetry's AttributeValue does not resolve at runtime.
    declared = InitConfig.__annotations__
    for name, annotation in InitOptions.__annotations__.items():
        assert getattr(annotation, "__forward_arg__", annotation) == declared[name], name


def test_an_unknown_init_option_names_the_closest_one() -> None:
    with pytest.raises(
        TypeError, match=r"init\(\) got an unknown option 'sample_rat'.*'sample_rate'"
    ):
        neatlogs_web.init(sample_rat=0.5, exporter="none")  # type: ignore[call-arg]
