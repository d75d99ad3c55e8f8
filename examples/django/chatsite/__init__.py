"""The example chat site over Django, traced with neatlogs_web (see README.md)."""
