"""A chat endpoint that authorizes a conversation before confirming it, and the
requests that name two conversations at once, for every framework's test.

The endpoint (``POST /chat``) reads the conversation id the way its framework
hands it over, in this order: the JSON body's field, the query parameter, the
header. Frameworks disagree on a repeated value: Starlette and Django give
the last query value, Flask the first; Starlette gives a repeated header's
first line, WSGI servers join its lines. The caller owns the conversation
named by its ``x-owner`` header; the endpoint refuses any other (403), and
otherwise calls ``confirm_conversation()`` with the id it checked and traces
a turn.

The attacker owns ``conv-attacker`` and names ``conv-victim`` too, in both
orders, so that whichever copy the framework reads is its own: the victim's
conversation must receive nothing.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan

VICTIM: Final = "conv-victim"
ATTACKER: Final = "conv-attacker"
OWNER_HEADER: Final = "x-owner"
CONVERSATION_HEADER: Final = "X-Conversation-Id"
FIELD: Final = "conversation_id"
#: The middleware options every test app uses.
OPTIONS: Final[dict[str, Any]] = {
    "conversation_query": FIELD,
    "conversation_header": CONVERSATION_HEADER,
    "conversation_json_field": FIELD,
    "conversation_binding": "when_confirmed",
}


def _attacks() -> dict[str, dict[str, Any]]:
    attacks: dict[str, dict[str, Any]] = {}
    for first, second in ((VICTIM, ATTACKER), (ATTACKER, VICTIM)):
        order = f"{first}_first"
        attacks[f"two_query_values_{order}"] = {"params": [(FIELD, first), (FIELD, second)]}
        attacks[f"two_headers_{order}"] = {
            "headers": [(CONVERSATION_HEADER, first), (CONVERSATION_HEADER, second)]
        }
    attacks["query_and_body"] = {"params": {FIELD: VICTIM}, "json": {FIELD: ATTACKER}}
    attacks["header_and_body"] = {
        "headers": [(CONVERSATION_HEADER, VICTIM)],
        "json": {FIELD: ATTACKER},
    }
    return attacks


#: httpx request arguments per attack, each sent with the attacker's owner header.
ATTACKS: Final = _attacks()


def authorize_and_chat(checked: str | None, owner: str | None) -> tuple[dict[str, Any], int]:
    """The endpoint's logic once its framework read the id: the JSON answer and status."""
    if checked is None or checked != owner:
        with neatlogs_web.trace("refused"):
            return {"checked": checked}, 403
    confirmed = neatlogs_web.confirm_conversation(checked)
    with neatlogs_web.trace("turn"):
        session = neatlogs_web.current_session_id()
    return {"checked": checked, "confirmed": confirmed, "session": session}, 200


def attack(base: str) -> dict[str, tuple[int, Any]]:
    """Send every attack as the attacker; return each one's status and confirmed id."""
    answers = {}
    with httpx.Client(base_url=base, timeout=20) as http:
        for name, arguments in ATTACKS.items():
            headers = [(OWNER_HEADER, ATTACKER), *arguments.get("headers", [])]
            response = http.post("/chat", **{**arguments, "headers": headers})
            answers[name] = (response.status_code, response.json().get("confirmed"))
    return answers


def confirm_plainly(base: str) -> dict[str, Any]:
    """The attacker names only its own conversation: the app confirms it."""
    response = httpx.post(
        base + "/chat", params={FIELD: ATTACKER}, headers={OWNER_HEADER: ATTACKER}, timeout=20
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_the_victim_received_nothing(base: str, receiver: OTLPReceiver) -> None:
    """Attack, then confirm the attacker's own conversation plainly (so binding
    works at all); once that turn is exported, no span is in the victim's."""
    answers = attack(base)
    assert confirm_plainly(base) == {
        "checked": ATTACKER,
        "confirmed": ATTACKER,
        "session": ATTACKER,
    }
    neatlogs_web.flush()
    spans = receiver.wait_for(lambda spans: ATTACKER in _sessions(spans))
    assert ATTACKER in _sessions(spans)
    # Whatever copy the framework read, nothing the request named was confirmed.
    assert {name: confirmed for name, (_, confirmed) in answers.items()} == dict.fromkeys(
        ATTACKS
    ), answers
    assert VICTIM not in _sessions(spans)


def _sessions(spans: list[ReceivedSpan]) -> set[Any]:
    return {span.attributes.get("session.id") for span in spans}
