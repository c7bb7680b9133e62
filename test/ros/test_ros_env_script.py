"""scripts/ros_env.sh: sourceable under `set -euo pipefail`, silent, idempotent, and a no-op
when nothing has been built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ros_env.sh"


def _source(script: Path, twice: bool = False) -> tuple[str, dict[str, str]]:
    src = f'source "{script}"; ' * (2 if twice else 1)
    cmd = f'set -euo pipefail; {src} printf "<<END>>"; env -0'
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "PYTHONPATH")}
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stderr == b""
    assert res.stdout.startswith(b"<<END>>")  # sourcing printed nothing
    text = res.stdout.decode()[len("<<END>>"):]
    out = dict(item.split("=", 1) for item in text.split("\0") if "=" in item)
    return text, out


def test_without_a_build_it_changes_nothing(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "ros_env.sh")
    _, env = _source(tmp_path / "scripts" / "ros_env.sh")
    assert "PYTHONPATH" not in env and "CMAKE_PREFIX_PATH" not in env


def test_with_the_build_it_adds_the_install_space_once():
    if not (ROOT / ".ros_ws" / ".ckd-built").exists():
        pytest.skip("the ROS package is not built (scripts/setup_ros.sh)")
    _, env = _source(SCRIPT, twice=True)
    install = ROOT / ".ros_ws" / "install" / "ckd_tracker_ros"
    prefixes = env["AMENT_PREFIX_PATH"].split(":")
    assert prefixes.count(str(install)) == 1
    site = [p for p in env["PYTHONPATH"].split(":") if p.startswith(str(install))]
    assert len(site) == 1 and Path(site[0], "ckd_tracker_ros", "msg").is_dir()
    assert str(install / "lib") in env["LD_LIBRARY_PATH"].split(":")
