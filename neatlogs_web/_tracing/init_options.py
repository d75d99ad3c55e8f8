"""``init()``'s options, declared once: defaults, checks, and what follows from them.

Like the middleware's (``neatlogs_web._session.options``): :class:`InitConfig`
lists every option with its default, the README's table lists the same
names (a test holds them together), a wrong value stops the app at startup
with a message naming the option, and an unknown name is a ``TypeError``
that suggests the closest one. :class:`InitOptions` mirrors the options
past ``init()``'s first ones for type checkers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal, TypedDict

from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.types import AttributeValue

from neatlogs_web._export import exporter as export
from neatlogs_web._export.backends import BACKENDS, Backend, detect_backend
from neatlogs_web._option_names import check_option_names
from neatlogs_web._session.binding import check_id
from neatlogs_web._tracing.stamping import END_USER_KEY_PRESETS, SESSION_KEY_PRESETS

__all__ = ["DEFAULT_WORKFLOW", "InitConfig", "InitOptions"]

DEFAULT_WORKFLOW: Final = "neatlogs-app"

Exporter = SpanExporter | Literal["otlp", "console", "none"]
RequestTraces = Literal["turns", "all"]


@dataclass(frozen=True, kw_only=True)
class InitConfig:
    """Every option of ``init()`` (see the README's table)."""

    #: ``None``: ``NEATLOGS_API_KEY``.
    api_key: str | None = None
    #: ``None``: ``NEATLOGS_ENDPOINT``, else the local collector.
    endpoint: str | None = None
    workflow_name: str | None = None
    auto_session: bool = False
    session_id: str | None = None
    exporter: Exporter | None = None
    #: ``None``: ``"langfuse"`` for an endpoint at Langfuse's OTLP path, else
    #: ``"neatlogs"`` with an API key, else ``"otlp"``.
    backend: Backend | None = None
    session_keys: str | Sequence[str] = "default"
    #: ``None``: like ``session_keys``, never ``user.id`` toward the neatlogs backend.
    end_user_keys: str | Sequence[str] | None = None
    #: ``None``: yes, except toward the neatlogs backend (it drops transport spans).
    join_request_trace: bool | None = None
    request_traces: RequestTraces = "turns"
    set_global_provider: bool = True
    resource_attributes: Mapping[str, AttributeValue] | None = None
    max_queue_size: int | None = None
    max_export_batch_size: int | None = None
    schedule_delay_ms: float | None = None
    export_timeout_s: float | None = None
    shutdown_timeout_s: float = 5.0
    flush_on_sigterm: bool = True
    sample_rate: float = 1.0
    #: What follows from the options: the keys sessions and end users are stamped under.
    session_key_list: tuple[str, ...] = field(init=False, repr=False, compare=False)
    end_user_key_list: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self)
        end_user_keys = self.end_user_keys
        if end_user_keys is None:
            end_user_keys = self.session_keys if isinstance(self.session_keys, str) else "default"
            if self.resolved_backend == "neatlogs" and end_user_keys == "default":
                end_user_keys = "neatlogs"  # it reads user.id as the operator
        keys = _keys("session_keys", self.session_keys, SESSION_KEY_PRESETS)
        object.__setattr__(self, "session_key_list", keys)
        user_keys = _keys("end_user_keys", end_user_keys, END_USER_KEY_PRESETS)
        object.__setattr__(self, "end_user_key_list", user_keys)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> InitConfig:
        """Build from keyword options; an unknown name is a ``TypeError``."""
        check_option_names("init()", options, OPTION_NAMES)
        return cls(**options)  # type: ignore[arg-type]

    @property
    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key
        return os.environ.get("NEATLOGS_API_KEY") or None

    @property
    def resolved_endpoint(self) -> str:
        return self.endpoint or os.environ.get("NEATLOGS_ENDPOINT") or export.LOCAL_ENDPOINT

    @property
    def export_configured(self) -> bool:
        """Export asked for in so many words, as opposed to the local collector by default."""
        return bool(self.endpoint or os.environ.get("NEATLOGS_ENDPOINT") or self.exporter)

    @property
    def resolved_backend(self) -> Backend:
        if self.backend is not None:
            return self.backend
        return detect_backend(self.resolved_endpoint, self.resolved_api_key)

    @property
    def workflow(self) -> str:
        return self.workflow_name or DEFAULT_WORKFLOW

    @property
    def joins_request_trace(self) -> bool:
        if self.join_request_trace is not None:
            return self.join_request_trace
        return self.resolved_backend != "neatlogs"


class InitOptions(TypedDict, total=False):
    """``init()``'s options past its first ones, for type checkers; see :class:`InitConfig`."""

    backend: Backend | None
    session_keys: str | Sequence[str]
    end_user_keys: str | Sequence[str] | None
    join_request_trace: bool | None
    request_traces: RequestTraces
    set_global_provider: bool
    resource_attributes: Mapping[str, AttributeValue] | None
    max_queue_size: int | None
    max_export_batch_size: int | None
    schedule_delay_ms: float | None
    export_timeout_s: float | None
    shutdown_timeout_s: float
    flush_on_sigterm: bool
    sample_rate: float


OPTION_NAMES: Final = frozenset(option.name for option in fields(InitConfig) if option.init)


def _check(config: InitConfig) -> None:
    if config.auto_session and config.session_id is not None:
        raise ValueError("init() takes auto_session or session_id, not both: drop one")
    if config.session_id is not None:
        check_id("init(session_id=...)", config.session_id)
    if config.backend is not None and config.backend not in BACKENDS:
        raise ValueError(
            f"backend must be 'neatlogs', 'otlp', 'phoenix' or 'langfuse', not {config.backend!r}"
        )
    if config.request_traces not in ("turns", "all"):
        raise ValueError(f"request_traces must be 'turns' or 'all', not {config.request_traces!r}")
    if not (_is_number(config.sample_rate) and 0.0 <= config.sample_rate <= 1.0):
        raise ValueError(f"sample_rate must be between 0.0 and 1.0, not {config.sample_rate!r}")
    for name in ("max_queue_size", "max_export_batch_size"):
        value = getattr(config, name)
        if value is not None and not (_is_number(value) and value >= 1 and value % 1 == 0):
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    queue, batch = config.max_queue_size, config.max_export_batch_size
    if queue and batch and batch > queue:
        raise ValueError("max_export_batch_size must not exceed max_queue_size: lower it")
    if not (_is_number(config.shutdown_timeout_s) and config.shutdown_timeout_s >= 0):
        raise ValueError(
            f"shutdown_timeout_s must be 0 or more seconds, not {config.shutdown_timeout_s!r}"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _keys(
    option: str, value: str | Sequence[str], presets: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    if isinstance(value, str):
        if value not in presets:
            raise ValueError(
                f"unknown {option} preset {value!r}: choose from "
                f"{', '.join(presets)} or pass a list of attribute keys"
            )
        return presets[value]
    keys = tuple(value)
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise ValueError(f"{option} must name at least one non-empty attribute key")
    return keys
