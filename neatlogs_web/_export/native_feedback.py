"""A person's judgment of a turn, also where the backend keeps judgments of its own.

``record_feedback()`` records a ``feedback`` span, a child of the turn's span,
which reaches every backend over OTLP. Phoenix and Langfuse also keep
judgments natively, where their UIs show and aggregate them: Phoenix as span
annotations, Langfuse as scores. With ``init(backend="phoenix")`` or
``"langfuse"``, once a batch holding feedback spans was exported, each
judgment is sent to that API too, on the same host, with the exporter's
headers, and names the turn's span (both backends take a judgment of a span
still on its way). It happens on the export thread, never a request's, once
the batch's spans are counted (``flush()`` waits for spans, not judgments):
one attempt per request, counted in ``stats()`` and reported like export
failures, at most once a minute per kind of trouble. A failure ends the
batch's attempts and the next minute's, whose judgments are counted as failed
at once: an API that is down or hangs costs the export thread at most one
``export_timeout_s`` a minute, and holds up no span.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import requests
from opentelemetry.sdk.trace import ReadableSpan

from neatlogs_web._export.backends import Backend
from neatlogs_web._export.health import UNKNOWN, ExportFailure, ExportVoice, ExportWatch

__all__ = ["Judgment", "NativeFeedback", "judgments"]

# The span record_feedback() records (neatlogs_web._tracing.feedback, a layer above):
# its name is also the judgment's in the backend.
FEEDBACK_SPAN_NAME: Final = "feedback"
_JUDGMENT_KEYS: Final = (
    "neatlogs.feedback.score",
    "neatlogs.feedback.label",
    "neatlogs.feedback.comment",
)
#: How long judgments are not sent after one failed: they are counted as failed.
_REST_AFTER_FAILURE_S: Final = 60.0
#: What each backend calls the place it keeps judgments in.
_PLACES: Final[dict[Backend, str]] = {
    "phoenix": "Phoenix span annotations",
    "langfuse": "Langfuse scores",
}


@dataclass(frozen=True)
class Judgment:
    """One feedback span's judgment, and the turn it judges."""

    trace_id: int
    #: The feedback span's own id: one judgment each, never merged with another.
    span_id: int
    #: The turn's span, the feedback span's parent.
    turn_span_id: int
    score: float | None
    label: str | None
    comment: str | None

    def phoenix_annotation(self) -> dict[str, Any]:
        """A Phoenix span annotation on the turn's span, by a person."""
        result = {"score": self.score, "label": self.label, "explanation": self.comment}
        return {
            "span_id": f"{self.turn_span_id:016x}",
            "name": FEEDBACK_SPAN_NAME,
            "annotator_kind": "HUMAN",
            "result": {key: value for key, value in result.items() if value is not None},
            "identifier": f"{self.span_id:016x}",
        }

    def langfuse_score(self) -> dict[str, Any] | None:
        """A Langfuse score of the turn's observation: numeric when there is a score
        (the label in its metadata), else categorical by the label. A comment alone
        is no score: it stays on the feedback span."""
        score: dict[str, Any] = {
            # The feedback span's ids: sent twice, the score is still one.
            "id": f"{self.trace_id:032x}-{self.span_id:016x}",
            "traceId": f"{self.trace_id:032x}",
            "observationId": f"{self.turn_span_id:016x}",
            "name": FEEDBACK_SPAN_NAME,
        }
        if self.score is not None:
            score |= {"value": self.score, "dataType": "NUMERIC"}
            if self.label is not None:
                score["metadata"] = {"label": self.label}
        elif self.label is not None:
            score |= {"value": self.label, "dataType": "CATEGORICAL"}
        else:
            return None
        if self.comment is not None:
            score["comment"] = self.comment
        return score


def judgments(spans: Sequence[ReadableSpan]) -> list[Judgment]:
    """The judgments among ``spans``: feedback spans with a parent and a judgment."""
    found = []
    for span in spans:
        parent = span.parent
        if span.name != FEEDBACK_SPAN_NAME or parent is None:
            continue
        attributes = span.attributes or {}
        score, label, comment = (attributes.get(key) for key in _JUDGMENT_KEYS)
        if score is None and label is None and comment is None:
            continue
        found.append(
            Judgment(
                span.context.trace_id,
                span.context.span_id,
                parent.span_id,
                float(score) if isinstance(score, int | float) else None,
                label if isinstance(label, str) else None,
                comment if isinstance(comment, str) else None,
            )
        )
    return found


class NativeFeedback:
    """Sends the judgments of exported batches to Phoenix's or Langfuse's own API."""

    def __init__(
        self, backend: Backend, url: str, headers: dict[str, str], *, timeout_s: float
    ) -> None:
        self.backend = backend
        self.url = url
        self._headers = headers
        #: Bounds and notes each request as the span exporter's watch does its own.
        self.watch = ExportWatch(timeout_s)
        self.voice = ExportVoice(
            f"{url} ({_PLACES[backend]})",
            f"Check that {backend.capitalize()} answers there and takes the exporter's "
            "credentials (api_key); the feedback spans themselves were exported.",
            unit="feedback judgments",
        )
        self._session = self.watch.session()
        #: After a failure, when to try the API again (``time.monotonic()``).
        self._resting_until = 0.0

    def send(self, spans: Sequence[ReadableSpan], deadline: float | None) -> tuple[int, int]:
        """Send the judgments among exported ``spans``, by ``deadline`` too
        (``time.monotonic()``, at shutdown). ``(sent, failed)``."""
        found = judgments(spans)
        if not found:
            return 0, 0
        requests_to_send = list(self._requests(found))
        if time.monotonic() < self._resting_until:
            return 0, sum(count for _, count in requests_to_send)
        self.watch.deadline = deadline
        sent = failed = 0
        trouble = None
        with self.watch.exporting():
            for body, count in requests_to_send:
                if trouble is not None:  # the API is down or hangs: not one timeout more
                    failed += count
                    continue
                trouble = self._post(body)
                if trouble is None:
                    sent += count
                else:
                    failed += count
        if trouble is None:
            self.voice.succeeded()
        else:
            self._resting_until = time.monotonic() + _REST_AFTER_FAILURE_S
            self.voice.failed(trouble, failed)
        return sent, failed

    def _requests(self, found: list[Judgment]) -> Iterator[tuple[dict[str, Any], int]]:
        """Each request's body and how many judgments it carries: Phoenix takes a
        batch's in one, Langfuse a score per request."""
        if self.backend == "phoenix":
            yield {"data": [judgment.phoenix_annotation() for judgment in found]}, len(found)
            return
        for judgment in found:
            score = judgment.langfuse_score()
            if score is not None:
                yield score, 1

    def _post(self, body: dict[str, Any]) -> ExportFailure | None:
        """One attempt; ``None`` when the backend took it, else what went wrong."""
        try:
            response = self._session.post(
                self.url, json=body, headers=self._headers, timeout=self.watch.export_timeout_s
            )
        except requests.RequestException:
            response = None
        if response is not None and 200 <= response.status_code < 300:
            return None
        return self.watch.last_trouble or UNKNOWN

    def close(self) -> None:
        self.watch.stop()
        self._session.close()
