"""What went wrong with export, and the one voice that tells the operator.

When the receiver is away, an operator needs one line that says where spans
were going, what happened, how many were lost and what to change, not a
line per retry. So the OTLP exporter's own log lines are held back while it
exports for us, its HTTP requests go through a ``requests`` adapter that
keeps each within the export's deadline and notes how it ended (refused,
timed out, an HTTP status, an answer cut short), and one ``ExportVoice``
turns those notes into at most one WARNING a minute per kind of trouble, and
one INFO when export works again. All of it goes through public interfaces:
``logging`` filters, ``requests`` transport adapters and the exporter's
``session`` argument.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import requests

from neatlogs_web._export.transport import (
    AnswerCutOff,
    BoundedAdapter,
    RequestTimeout,
    seconds_of,
)

logger = logging.getLogger("neatlogs_web")

#: At most one WARNING per kind of trouble in this many seconds.
REPORT_INTERVAL_S: Final = 60.0


@dataclass(frozen=True)
class ExportFailure:
    """One kind of export failure: ``kind`` groups reports, ``what`` is said."""

    kind: str
    what: str


UNKNOWN: Final = ExportFailure("failure", "the exporter reported a failure")


class NotSent(requests.ConnectTimeout):
    """A request that never left: export is stopped, or its deadline passed."""


def _seconds_text(seconds: float) -> str:
    """A wait as an operator sets it, in tenths of a second: the few milliseconds an
    attempt started after its export's deadline began are no news to them."""
    if seconds < 0.1:
        return f"{seconds:.2g}"
    return f"{round(seconds, 1):g}"


def trouble_of(error: BaseException, timeout: RequestTimeout = None) -> ExportFailure:
    """Name what an exception raised while exporting means for the operator."""
    seconds = seconds_of(timeout)
    waited = f" within {_seconds_text(seconds)} s" if seconds is not None else ""
    if isinstance(error, NotSent):
        return ExportFailure("timeout", str(error))
    if isinstance(error, AnswerCutOff):
        return ExportFailure(
            "timeout",
            f"no answer{waited}: the receiver accepted the connection but did not finish "
            "replying, and the request was cut off",
        )
    if isinstance(error, requests.ConnectTimeout):
        return ExportFailure("timeout", f"timed out connecting{waited}")
    if isinstance(error, requests.Timeout):
        return ExportFailure(
            "timeout",
            f"no answer{waited}: the receiver accepted the connection but did not reply",
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in _causes(error)):
        return ExportFailure("refused", "connection refused: nothing listens there")
    if isinstance(error, requests.ConnectionError):
        return ExportFailure("connection", f"could not connect ({type(_root(error)).__name__})")
    return ExportFailure("error", f"the exporter raised {type(error).__name__}: {error}")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: ``requests`` and ``urllib3`` nest the OS error."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += list(current.args)


def _root(error: BaseException) -> BaseException:
    return list(_causes(error))[-1]


def trouble_of_status(status: int, reason: str | None) -> ExportFailure:
    what = f"the receiver answered HTTP {status}" + (f" {reason}" if reason else "")
    if status == 429:
        what += " (throttled)"
    elif status in (401, 403):
        what += (
            ": check the credentials, init(api_key=...) or NEATLOGS_API_KEY"
            " (Phoenix: PHOENIX_API_KEY; Langfuse: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)"
        )
    return ExportFailure(f"http-{status}", what)


class _Exporting(threading.local):
    """Per thread: whether it is inside one of our exports, how it went, and
    when its time is up (``time.monotonic()``)."""

    active = False
    trouble: ExportFailure | None = None
    deadline: float | None = None


_exporting = _Exporting()


class _QuietWhileWeExport(logging.Filter):
    """Holds back a logger's records emitted during our exports (its retry lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _exporting.active


_QUIET: Final = _QuietWhileWeExport()


def quiet_while_exporting(logger_name: str) -> None:
    """Silence ``logger_name`` while it works for us; its records elsewhere pass."""
    logging.getLogger(logger_name).addFilter(_QUIET)


class ExportWatch:
    """Gives each export request its time, and notes how it ended.

    Each export, its retries included, has ``export_timeout_s`` whatever the
    receiver does: a request gets what is left of it, and is cut off when
    that runs out. ``deadline`` (``time.monotonic()``) caps requests the same
    way while the process is stopping; once ``stop()`` is called, no request
    leaves at all, so an exporter still retrying gives up at once.
    """

    def __init__(self, export_timeout_s: float | None = None) -> None:
        self.export_timeout_s = export_timeout_s
        self.deadline: float | None = None
        self.stopped = False
        #: How the latest request ended, retries included; ``None`` when it went through.
        self.last_trouble: ExportFailure | None = None

    @contextmanager
    def exporting(self) -> Iterator[_Exporting]:
        """Around one inner export: holds back its log lines, collects its trouble."""
        _exporting.active, _exporting.trouble = True, None
        if self.export_timeout_s is not None:
            _exporting.deadline = time.monotonic() + self.export_timeout_s
        try:
            yield _exporting
        finally:
            _exporting.active, _exporting.deadline = False, None

    def stop(self) -> None:
        self.stopped = True

    def fit(self, timeout: RequestTimeout) -> RequestTimeout:
        """``timeout`` shortened to what the export's deadline and the shutdown's leave."""
        if self.stopped:
            raise NotSent("export was stopped at shutdown")
        deadlines = [d for d in (self.deadline, _exporting.deadline) if d is not None]
        if not deadlines:
            return timeout
        remaining = min(deadlines) - time.monotonic()
        if remaining <= 0:
            raise NotSent(
                "no time was left for another attempt before the deadline "
                "(export_timeout_s, or shutdown_timeout_s at shutdown)"
            )
        seconds = seconds_of(timeout)
        return remaining if seconds is None else min(seconds, remaining)

    def note(self, trouble: ExportFailure | None) -> None:
        self.last_trouble = trouble
        if _exporting.active:
            _exporting.trouble = trouble

    def failed(self, error: requests.RequestException, timeout: RequestTimeout) -> None:
        if isinstance(error, NotSent) and _exporting.active and _exporting.trouble is not None:
            return  # what stopped an earlier attempt says more about the receiver
        self.note(trouble_of(error, timeout))

    def answered(self, response: requests.Response, cut_short: str | None) -> None:
        status = response.status_code
        if not 200 <= status < 300:
            self.note(trouble_of_status(status, response.reason))
        elif cut_short is not None:
            self.note(
                ExportFailure(
                    "answer", f"its answer (HTTP {status}) {cut_short}; the rest was not read"
                )
            )
        else:
            self.note(None)

    def session(self) -> requests.Session:
        """A ``requests`` session for the OTLP exporter: bounded, and reporting to this watch."""
        session = requests.Session()
        # A redirect is never followed: requests would carry the x-api-key header
        # to whatever host the receiver names (older OTLP exporters follow them).
        session.max_redirects = 0
        adapter = BoundedAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


class _LossCount:
    """Spans lost one way since it was last reported, and when that was."""

    __slots__ = ("last_report", "since_report", "total")

    def __init__(self) -> None:
        self.total = 0
        self.since_report = 0
        self.last_report = -REPORT_INTERVAL_S

    def add(self, count: int, now: float) -> tuple[int, int] | None:
        """Count ``count`` more; ``(since the last report, total)`` when one is due."""
        self.total += count
        self.since_report += count
        if now - self.last_report < REPORT_INTERVAL_S:
            return None
        self.last_report = now
        recent, self.since_report = self.since_report, 0
        return recent, self.total


class ExportVoice:
    """Everything export says to the operator, rate-limited per kind of trouble.

    ``destination`` names where spans go; ``fix`` says what to change when
    they cannot get there; ``unit`` names what is sent, when it is not spans.
    """

    def __init__(self, destination: str, fix: str, *, unit: str = "spans") -> None:
        self.destination = destination
        self.fix = fix
        self.unit = unit
        self._lock = threading.Lock()
        self._tallies: dict[str, _LossCount] = {}
        self._warned = False
        self._lost_since_ok = 0

    def started(self) -> None:
        logger.info("neatlogs_web: %s go to %s", self.unit, self.destination)

    def failed(self, trouble: ExportFailure, spans: int) -> None:
        """Spans an export lost; the first loss of a kind is reported at once."""
        report = self._count(trouble.kind, spans)
        if report is not None:
            logger.warning(
                "neatlogs_web could not export %d %s to %s: %s (%d lost in total this "
                "way; next report of it in a minute at the earliest). %s",
                report[0],
                self.unit,
                self.destination,
                trouble.what,
                report[1],
                self.fix,
            )

    def dropped(self, spans: int, queue_size: int) -> None:
        """Spans refused because ``queue_size`` were already waiting for export."""
        report = self._count("queue full", spans)
        if report is not None:
            logger.warning(
                "neatlogs_web dropped %d spans: %d were already waiting for export to %s, "
                "which is failing or slower than the app makes spans (%d dropped in total). %s",
                report[0],
                queue_size,
                self.destination,
                report[1],
                self.fix,
            )

    def lost_at_exit(self, spans: int, timeout_s: float, trouble: ExportFailure | None) -> None:
        logger.warning(
            "neatlogs_web lost %d spans at shutdown: %s did not accept them within "
            "shutdown_timeout_s (%g s)%s. %s",
            spans,
            self.destination,
            timeout_s,
            f" (last attempt: {trouble.what})" if trouble is not None else "",
            self.fix,
        )

    def answered_badly(self, trouble: ExportFailure) -> None:
        """An export went through, but the receiver answered in a way we would not read."""
        with self._lock:
            report = self._due(trouble.kind, 1)
        if report is not None:
            logger.warning(
                "neatlogs_web exported spans to %s, but %s (%d such answers in total; next "
                "report of it in a minute at the earliest). Check the receiver at that address.",
                self.destination,
                trouble.what,
                report[1],
            )

    def succeeded(self) -> None:
        """An export went through: say so once if a failure was reported before."""
        if not self._warned:
            return
        with self._lock:
            warned, self._warned = self._warned, False
            lost, self._lost_since_ok = self._lost_since_ok, 0
        if warned:
            logger.info(
                "neatlogs_web: export to %s works again (%d %s were lost while it failed)",
                self.destination,
                lost,
                self.unit,
            )

    def _count(self, kind: str, spans: int) -> tuple[int, int] | None:
        with self._lock:
            report = self._due(kind, spans)
            if kind != "queue full":
                self._lost_since_ok += spans
                self._warned = self._warned or report is not None
        return report

    def _due(self, kind: str, count: int) -> tuple[int, int] | None:
        """Count ``count`` more of ``kind`` (under the lock); the report, when one is due."""
        return self._tallies.setdefault(kind, _LossCount()).add(count, time.monotonic())
