"""The project's WSGI and ASGI applications, wrapped as its README would say."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_confirming.settings")

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

import neatlogs_web
from neatlogs_web.integrations.django import wrap_asgi, wrap_wsgi

neatlogs_web.init(workflow_name="django-confirming", schedule_delay_ms=50)
wsgi = wrap_wsgi(get_wsgi_application())
asgi = wrap_asgi(get_asgi_application())
