"""Django, on gunicorn and uvicorn: a request naming two conversations never
writes into the victim's, though Django hands the view a repeated query
parameter's last value and the body rather than the query.

The project (``django_confirming``) has ``conversation_binding="when_confirmed"``
and a view that calls ``confirm_conversation(id)`` once it authorized the id it
read; the attacks are ``tests/conversation_attacks.py``'s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conversation_attacks import assert_the_victim_received_nothing
from tests.integrations._processes import django_server
from tests.otlp_receiver import OTLPReceiver

PROJECT = "tests.integrations.django_confirming.application"


@pytest.mark.parametrize("server", ["gunicorn-gthread", "uvicorn"])
def test_a_request_naming_two_conversations_never_writes_into_the_victims(
    server: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    env = {"NEATLOGS_ENDPOINT": receiver.url}
    with django_server(
        server, env, tmp_path / "server.log", wsgi=f"{PROJECT}:wsgi", asgi=f"{PROJECT}:asgi"
    ) as base:
        assert_the_victim_received_nothing(base, receiver)
