"""The session layer: which session a request belongs to, and the binding that carries it.

Sans-IO and free of OpenTelemetry: ids, signed tokens, the sources a
session is read from, the resolver's decisions, and the ``ContextVar`` that
binds a session to a unit of work. Nothing here imports tracing or export.
"""
