"""``python -m tests.reliability``: the long suite, then ``docs/reliability.md``.

Exits with pytest's status; the page is written either way and says whether
every scenario passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.render import render
from tests.reliability.report import REPORT_ENV
from tests.reliability.scale import LONG_ENV
from tests.servers import ROOT

TARGETS = ["tests/reliability", "tests/test_fuzz.py"]


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "figures.jsonl"
        report.touch()
        env = {**os.environ, LONG_ENV: "long", REPORT_ENV: str(report)}
        started, clock = datetime.now(UTC), time.monotonic()
        status = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TARGETS],
            cwd=ROOT,
            env=env,
            check=False,
        ).returncode
        seconds = time.monotonic() - clock
        rows = [json.loads(line) for line in report.read_text().splitlines() if line]
    outcome = "every scenario passed" if status == 0 else f"FAILED (pytest exit status {status})"
    page = ROOT / "docs" / "reliability.md"
    page.write_text(render(rows, started, seconds, outcome), encoding="utf-8")
    print(f"wrote {page.relative_to(ROOT)}: {outcome}")
    return status


if __name__ == "__main__":
    sys.exit(main())
