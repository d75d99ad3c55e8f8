"""A Django project for the Django and Celery integration tests, served by
real servers in subprocesses (gunicorn, uvicorn, daphne) and run by a real
``celery worker``.

Every span it records carries ``user`` (the client's label, a query
parameter or a task argument), so a test can check that each span landed in
that client's session, and nobody else's.
"""
