"""Debian's chromium as the page tests and the screenshots script launch it."""

from __future__ import annotations

# As CI installs it (`make browser`); the flags keep it off the (closed) network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
