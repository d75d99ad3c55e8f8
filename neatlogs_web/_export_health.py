"""What went wrong with export, and the one voice that tells the operator.

When the receiver is away, an operator needs one line that says where spans
were going, what happened, how many were lost and what to change, not a
line per retry. So the OTLP exporter's own log lines are held back while it
exports for us, its HTTP requests go through a ``requests`` adapter that
notes how each one ended (refused, timed out, an HTTP status), and one
``ExportVoice`` turns those notes into at most one WARNING a minute per kind
of trouble, and one INFO when export works again. All of it goes through
public interfaces: ``logging`` filters, ``requests`` transport adapters and
the exporter's ``session`` argument.
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
from requests.adapters import HTTPAdapter

logger = logging.getLogger("neatlogs_web")

#: At most one WARNING per kind of trouble in this many seconds.
REPORT_INTERVAL_S: Final = 60.0

RequestTimeout = float | tuple[float | None, float | None] | None


@dataclass(frozen=True)
class Trouble:
    """One kind of export failure: ``kind`` groups reports, ``what`` is said."""

    kind: str
    what: str


UNKNOWN: Final = Trouble("failure", "the exporter reported a failure")


def trouble_of(error: BaseException, timeout: RequestTimeout = None) -> Trouble:
    """Name what an exception raised while exporting means for the operator."""
    waited = f" within {timeout:.2g} s" if isinstance(timeout, int | float) else ""
    if isinstance(error, requests.ConnectTimeout):
        return Trouble("timeout", f"timed out connecting{waited}")
    if isinstance(error, requests.Timeout):
        return Trouble(
            "timeout",
            f"no answer{waited}: the receiver accepted the connection but did not reply",
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in _causes(error)):
        return Trouble("refused", "connection refused: nothing listens there")
    if isinstance(error, requests.ConnectionError):
        return Trouble("connection", f"could not connect ({type(_root(error)).__name__})")
    return Trouble("error", f"the exporter raised {type(error).__name__}: {error}")


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


def trouble_of_status(status: int, reason: str | None) -> Trouble:
    what = f"the receiver answered HTTP {status}" + (f" {reason}" if reason else "")
    if status == 429:
        what += " (throttled)"
    elif status in (401, 403):
        what += ": check NEATLOGS_API_KEY"
    return Trouble(f"http-{status}", what)


class _Exporting(threading.local):
    """Per thread: whether it is inside one of our exports, and how it went."""

    active = False
    trouble: Trouble | None = None


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
    """Notes how each export request ended, and bounds requests at shutdown.

    ``deadline`` (``time.monotonic()``) caps each request's timeout while the
    process is stopping; once ``stop()`` is called, no request leaves at all,
    so an exporter still retrying gives up at once.
    """

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.stopped = False
        #: How the latest request ended, retries included; ``None`` when it went through.
        self.last_trouble: Trouble | None = None

    @contextmanager
    def exporting(self) -> Iterator[_Exporting]:
        """Around one inner export: holds back its log lines, collects its trouble."""
        _exporting.active, _exporting.trouble = True, None
        try:
            yield _exporting
        finally:
            _exporting.active = False

    def stop(self) -> None:
        self.stopped = True

    def fit(self, timeout: RequestTimeout) -> RequestTimeout:
        """``timeout`` shortened to what the shutdown deadline leaves."""
        if self.stopped:
            raise requests.ConnectionError("neatlogs_web export stopped at shutdown")
        deadline = self.deadline
        if deadline is None or not isinstance(timeout, int | float):
            return timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise requests.ConnectTimeout("neatlogs_web shutdown deadline passed")
        return min(timeout, remaining)

    def note(self, trouble: Trouble | None) -> None:
        self.last_trouble = trouble
        if _exporting.active:
            _exporting.trouble = trouble

    def session(self) -> requests.Session:
        """A ``requests`` session for the OTLP exporter, reporting to this watch."""
        session = requests.Session()
        adapter = _WatchingAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


class _WatchingAdapter(HTTPAdapter):
    """The standard transport adapter, telling the watch how each request ended."""

    def __init__(self, watch: ExportWatch) -> None:
        super().__init__()
        self._watch = watch

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: RequestTimeout = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        watch = self._watch
        try:
            timeout = watch.fit(timeout)
            response = super().send(request, stream, timeout, verify, cert, proxies)
        except requests.RequestException as error:
            watch.note(trouble_of(error, timeout))
            raise
        ok = 200 <= response.status_code < 300
        watch.note(None if ok else trouble_of_status(response.status_code, response.reason))
        return response


class _Tally:
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
    they cannot get there.
    """

    def __init__(self, destination: str, fix: str) -> None:
        self.destination = destination
        self.fix = fix
        self._lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}
        self._warned = False
        self._lost_since_ok = 0

    def started(self) -> None:
        logger.info("neatlogs_web: spans go to %s", self.destination)

    def failed(self, trouble: Trouble, spans: int) -> None:
        """Spans an export lost; the first loss of a kind is reported at once."""
        report = self._count(trouble.kind, spans)
        if report is not None:
            logger.warning(
                "neatlogs_web could not export %d spans to %s: %s (%d lost in total this "
                "way; next report of it in a minute at the earliest). %s",
                report[0],
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

    def lost_at_exit(self, spans: int, timeout_s: float, trouble: Trouble | None) -> None:
        logger.warning(
            "neatlogs_web lost %d spans at shutdown: %s did not accept them within "
            "shutdown_timeout_s (%g s)%s. %s",
            spans,
            self.destination,
            timeout_s,
            f" (last attempt: {trouble.what})" if trouble is not None else "",
            self.fix,
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
                "neatlogs_web: export to %s works again (%d spans were lost while it failed)",
                self.destination,
                lost,
            )

    def _count(self, kind: str, spans: int) -> tuple[int, int] | None:
        with self._lock:
            report = self._tallies.setdefault(kind, _Tally()).add(spans, time.monotonic())
            if kind != "queue full":
                self._lost_since_ok += spans
                self._warned = self._warned or report is not None
        return report
