"""The web adapters' own ground: the request flow ASGI and WSGI share, and the clean
start an ASGI server needs (its receive() and send() run outside the request)."""
