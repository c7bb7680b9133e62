"""settle_process(): the process-wide settings the node's main() applies after start-up.

Run in a child process: gc.freeze() and mallopt cannot be undone, and the test process must
keep its defaults."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

CHILD = """
import gc, json
from ckd_tracker_ros.process import settle_process
before = len(gc.get_objects())
applied = settle_process()
print(json.dumps({"applied": applied, "before": before, "frozen": gc.get_freeze_count(),
                  "tracked_after": len(gc.get_objects())}))
"""


def _run_child() -> dict:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=os.environ, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_settle_process_freezes_the_start_up_objects():
    out = _run_child()
    assert "gc.freeze" in out["applied"]
    # Everything alive at start-up (rclpy, numpy, the node module) left the collector's
    # generations: a full collection no longer walks it.
    assert out["frozen"] >= 0.9 * out["before"]
    assert out["tracked_after"] < 0.1 * out["before"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc tuning applies to glibc only")
def test_settle_process_tunes_glibc_malloc():
    assert "glibc malloc keeps image-sized buffers" in _run_child()["applied"]
