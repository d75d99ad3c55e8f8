from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_site.settings")

from django.core.wsgi import get_wsgi_application

import neatlogs_web
from neatlogs_web.integrations.django import wrap_wsgi

neatlogs_web.init(workflow_name="django-web", schedule_delay_ms=50)
application = wrap_wsgi(get_wsgi_application())
