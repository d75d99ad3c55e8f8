"""What `make` does on a machine, read through its own recipes.

Installing Redis for the Celery tests leaves no system service behind; every
long install says what it is about to do before it starts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.servers import ROOT

# Stand-ins for the system's tools: each records its arguments, and apt-get
# whether the policy forbade starting services while it ran.
APT_GET = """#!/bin/sh
echo "apt-get $* policy=$(cat "$POLICY" 2>/dev/null | tail -1)" >> "$CALLS"
"""
SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$CALLS"
"""
SUDO = """#!/bin/sh
exec "$@"
"""


def test_installing_redis_starts_no_system_service_and_enables_none(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, script in {"apt-get": APT_GET, "systemctl": SYSTEMCTL, "sudo": SUDO}.items():
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    policy, calls = tmp_path / "policy-rc.d", tmp_path / "calls"
    env = {
        **os.environ,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "POLICY": str(policy),
        "CALLS": str(calls),
    }
    done = subprocess.run(
        ["make", "-s", "redis", f"REDIS_SERVER={tmp_path}/absent", f"POLICY_RC_D={policy}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("Installing Debian's redis-server with apt-get"), done.stdout
    recorded = calls.read_text().splitlines()
    assert recorded[1].startswith("apt-get install") and recorded[1].endswith("policy=exit 101")
    assert recorded[2].startswith("systemctl disable") and "redis-server" in recorded[2]
    assert not policy.exists(), "the policy the recipe wrote is gone again"


def test_a_policy_the_machine_had_stays(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("apt-get", "systemctl", "sudo"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    subprocess.run(
        ["make", "-s", "redis", f"REDIS_SERVER={tmp_path}/absent", f"POLICY_RC_D={policy}"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        check=True,
    )
    assert policy.read_text() == "#!/bin/sh\nexit 101\n"


def dry_run(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_each_long_install_is_announced_before_it_runs() -> None:
    lines = dry_run(
        ".venv/.installed", ".venv/.installed-demo", "phoenix", ".venv/floor/.installed"
    )
    heavy = [
        number
        for number, line in enumerate(lines)
        if "pip install" in line or "phoenix_server install" in line or " -m venv " in line
    ]
    assert len(heavy) >= 6, lines
    for number in heavy:
        # Said on one of the two lines before (one lead-in covers a venv and its pip).
        assert any("echo " in line for line in lines[max(0, number - 2) : number]), lines[number]
