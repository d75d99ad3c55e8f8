"""Settings of the example chat site.

neatlogs_web reads its options from ``NEATLOGS``; the cookie is signed with
``NEATLOGS_SECRET_KEY`` from the environment when set, else with Django's
``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS`` while you rotate it).
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-secret-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "chatsite.urls"
WSGI_APPLICATION = "chatsite.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # After routing: the <conversation_id> of the URL becomes the session.
    "neatlogs_web.integrations.django.NeatlogsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES: dict[str, object] = {}
USE_TZ = True

NEATLOGS = {
    "exclude_paths": ["/healthz", "/neatlogs-session.js"],
    # Each socket reply names its turn; POST /neatlogs/feedback judges it, in the
    # conversation named by ?conversation_id= (the socket's session).
    "feedback": True,
    "conversation_query": "conversation_id",
}
