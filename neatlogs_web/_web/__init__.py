"""What the ASGI and WSGI adapters share beyond the session layer."""
