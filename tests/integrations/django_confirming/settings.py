"""Settings as a Django user writes them: the chat waits for its view to confirm."""

from __future__ import annotations

from tests.conversation_attacks import OPTIONS

SECRET_KEY = "django-confirming-test-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.integrations.django_confirming.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["neatlogs_web.integrations.django.NeatlogsMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True
NEATLOGS = {**OPTIONS, "exclude_paths": ["/healthz"]}
