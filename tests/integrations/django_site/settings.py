"""Settings as a Django user writes them: the options come from ``NEATLOGS``."""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-site-test-key")
SECRET_KEY_FALLBACKS = ["django-site-old-key"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.integrations.django_site.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "neatlogs_web.integrations.django.NeatlogsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "neatlogs_web.integrations.django.context_processor",
            ]
        },
    }
]
DATABASES: dict[str, object] = {}
USE_TZ = True
NEATLOGS = {"exclude_paths": ["/healthz", "/internal/*"]}
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
