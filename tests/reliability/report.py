"""Figures the scenarios measure, gathered for ``docs/reliability.md``.

Each scenario records its figures; ``python -m tests.reliability`` points
``NEATLOGS_RELIABILITY_REPORT`` at a file and renders the page from it. In
``make test`` nothing is written.
"""

from __future__ import annotations

import json
import os
from typing import Any

REPORT_ENV = "NEATLOGS_RELIABILITY_REPORT"


def record(section: str, scenario: str, **figures: Any) -> None:
    """Append one scenario's figures (JSON-serialisable values) to the report."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    line = json.dumps({"section": section, "scenario": scenario, **figures}, sort_keys=True)
    with open(path, "a", encoding="utf-8") as report:
        report.write(line + "\n")
