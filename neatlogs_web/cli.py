"""The `neatlogs-web` command: one subcommand per task, each a function taking parsed args.

Heavy imports (uvicorn, the collector) happen inside the command that needs them, so
`neatlogs-web --help` works without the optional extras installed.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable, Sequence

from ._version import __version__

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    return command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neatlogs-web",
        description="Per-request tracing sessions for Python web apps: local tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        subparser = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(subparser)
        subparser.set_defaults(command=run)
    return parser


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=4318, help="port to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="SQLite file to keep spans in, or :memory: (default: collector.db in the"
        " user's data directory)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name, e.g. a container's service name"
        " (repeatable; loopback names and --host are always allowed)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this value in the x-api-key header of every export",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="largest export body accepted, also once decompressed (default: 16 MiB)",
    )


def _serve(args: argparse.Namespace) -> int:
    """Run the collector in the foreground until Ctrl-C."""
    try:
        import uvicorn

        from .collector import (
            DEFAULT_MAX_BODY_BYTES,
            Store,
            StoreError,
            create_app,
            default_db_path,
        )
        from .collector.ports import PortTaken, check_port_free
    except ImportError as exc:
        print(
            f"neatlogs-web serve needs the collector extra ({exc.name} is missing):"
            " pip install 'neatlogs-web[collector]'",
            file=sys.stderr,
        )
        return 2
    try:
        check_port_free(
            args.host,
            args.port,
            "neatlogs-web serve --port {port}, and send to it with"
            " NEATLOGS_ENDPOINT=http://127.0.0.1:{port}",
        )
    except PortTaken as taken:
        print(f"neatlogs-web serve: {taken}", file=sys.stderr)
        return 2
    db = args.db or str(default_db_path())
    try:
        store = Store(db)
    except (StoreError, OSError) as exc:
        print(f"neatlogs-web serve: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host) and not args.api_key:
        print(
            f"warning: listening on {args.host} without --api-key: anyone who can reach it"
            " can send spans and read them",
            file=sys.stderr,
        )
    app = create_app(
        store,
        host=args.host,
        allowed_hosts=args.allow_host,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
    )
    url = f"http://{_url_host(args.host)}:{args.port}"
    print(f"neatlogs-web collector: page {url}/  OTLP/HTTP {url}/v1/traces  db {db}", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--users", type=_positive_int, default=20, help="concurrent users (default: %(default)s)"
    )
    parser.add_argument(
        "--turns", type=_positive_int, default=5, help="turns per user (default: %(default)s)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="stop the users after this long (default: %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=4318, help="collector port (default: %(default)s)"
    )
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="exit after the summary instead of keeping the collector up",
    )


def _demo(args: argparse.Namespace) -> int:
    """Collector, example chat app and simulated users, then a per-session summary."""
    try:
        from .demo import run_demo
    except ImportError as exc:
        print(
            f"neatlogs-web demo needs the examples and collector extras ({exc.name} is missing):"
            " pip install 'neatlogs-web[examples,collector]'",
            file=sys.stderr,
        )
        return 2
    try:
        return run_demo(
            users=args.users,
            turns=args.turns,
            duration_s=args.duration,
            collector_port=args.port,
            wait=args.wait,
        )
    except RuntimeError as exc:  # a port taken, a server that did not come up: said whole
        print(f"neatlogs-web demo: {exc}", file=sys.stderr)
        return 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# name -> (help, add its arguments, run it). A new command is one more entry.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {
    "serve": (
        "run the local OTLP collector and session timeline page",
        _serve_arguments,
        _serve,
    ),
    "demo": (
        "run the collector, the example chat app and simulated users",
        _demo_arguments,
        _demo,
    ),
}
