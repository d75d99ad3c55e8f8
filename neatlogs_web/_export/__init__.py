"""The export layer: spans batched, sent over OTLP, and the operator told when that fails.

It never blocks or fails a request, and never waits past its deadlines.
"""
