"""The tracing layer: ``init()``, ``trace()``, and the session stamped on every span.

It reads the session through the session layer and builds the export
pipeline from the export layer; neither of those imports it.
"""
