"""WSGI entry point (gunicorn, ``manage.py runserver``): Django wrapped by neatlogs_web.

The wrapper binds each request's session for the request's whole life,
including a streamed reply that the server sends after the view returned.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from django.core.wsgi import get_wsgi_application

import chatsite.tracing  # noqa: F401
from neatlogs_web.integrations.django import wrap_wsgi

application = wrap_wsgi(get_wsgi_application())
