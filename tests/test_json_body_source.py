"""The JSON-body conversation source, alone and against hostile bodies, on real servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.apps import make_asgi_app, make_wsgi_app
from tests.servers import run_uvicorn, run_waitress

JSON_ONLY = {"conversation_paths": (), "conversation_json_field": "conversation_id"}


def serve(kind: str, **options: Any) -> AbstractContextManager[str]:
    if kind == "asgi":
        return run_uvicorn(make_asgi_app(**options))
    return run_waitress(make_wsgi_app(**options))


@pytest.fixture(params=["asgi", "wsgi"], scope="module")
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with serve(str(request.param), **JSON_ONLY) as url:
        yield url


@pytest.fixture(
    params=[("asgi", False), ("wsgi", False), ("asgi", True), ("wsgi", True)],
    ids=["asgi", "wsgi", "asgi-json-only", "wsgi-json-only"],
    scope="module",
)
def any_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The JSON field after a path template (the defaults of the test app), or alone."""
    kind, json_only = request.param
    with serve(kind, **(JSON_ONLY if json_only else {})) as url:
        yield url


def test_the_json_field_alone_names_the_conversation(base_url: str) -> None:
    response = httpx.post(base_url + "/json", json={"conversation_id": "conv-json-1", "q": "hi"})
    assert response.status_code == 200
    assert response.json()["session_id"] == "conv-json-1"
    # The app still reads the whole body.
    assert response.json()["body_length"] == str(len(response.request.content))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'{"conversation_id": ' + b"[" * 5000,
        b'{"a": ' + b'{"b": ' * 3000 + b"1" + b"}" * 3001,
        b"\xff\xfe{",
        b"{not json",
    ],
    ids=["nested-array", "nested-in-field", "deep-object", "bad-bytes", "bad-syntax"],
)
def test_a_hostile_body_is_skipped_and_the_app_still_gets_it(any_url: str, body: bytes) -> None:
    response = httpx.post(
        any_url + "/json", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["body_length"] == str(len(body))
    assert response.json()["session_id"] not in (None, "conversation_id")


CONVERSATION = b'{"conversation_id": "conv-json-2"}'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, CONVERSATION),
        ("text/plain", CONVERSATION),
        ("application/vnd.api+json", CONVERSATION),
        ("application/json", b"\xef\xbb\xbf" + CONVERSATION),
        ("application/json", CONVERSATION.decode().encode("utf-16")),
        ("application/json", CONVERSATION.decode().encode("utf-32")),
    ],
    ids=["no-content-type", "text-plain", "plus-json", "bom", "utf-16", "utf-32"],
)
def test_any_body_an_app_would_parse_as_json_names_the_conversation(
    base_url: str, content_type: str | None, body: bytes
) -> None:
    """Read as ``request.json()`` reads it: whatever the type says, decoded as
    ``json.loads`` decodes bytes."""
    headers = {} if content_type is None else {"content-type": content_type}
    response = httpx.post(base_url + "/json", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"session_id": "conv-json-2", "body_length": str(len(body))}
