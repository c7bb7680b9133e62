"""ROS test set-up: an isolated DDS domain per test process, loopback only.

Each pytest process takes its own ROS_DOMAIN_ID in 1..100 (starting from one derived from the
pid, holding an exclusive lock file so parallel runs on this machine never share a domain)
and restricts discovery to localhost. This happens when this conftest is imported, before any
test module creates an rclpy context.

Test modules that need rclpy and the built interfaces call `ros_helpers.require_ros()` first:
when something is missing they are skipped, and the reason is printed in the summary.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

import pytest

_LOCK_FILE = None


def _claim_domain_id() -> int:
    global _LOCK_FILE
    start = os.getpid() % 100
    for k in range(100):
        domain = 1 + (start + k) % 100
        path = os.path.join(tempfile.gettempdir(), f"ckd_tracker_ros_domain_{domain}.lock")
        f = open(path, "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _LOCK_FILE = f  # held (and the domain reserved) until this process exits
        return domain
    return 1 + start


os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_STATIC_PEERS"] = ""
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated since Jazzy; the range above replaces it


def pytest_report_header(config):
    from ros_helpers import ros_unavailable
    reason = ros_unavailable()
    return (f"ROS tests: domain {os.environ['ROS_DOMAIN_ID']}, localhost only; "
            + (f"SKIPPED: {reason}" if reason else "rclpy and built interfaces found"))


def pytest_terminal_summary(terminalreporter):
    from ros_helpers import ros_unavailable
    reason = ros_unavailable()
    if reason:
        terminalreporter.write_line(f"test/ros: ROS tests skipped: {reason}", yellow=True)


@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context for one test module (init / shutdown around it)."""
    import rclpy
    from rclpy.context import Context
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(path, TrackerConfig) of a tiny randomly initialised CKD checkpoint (ckd_tiny preset):
    the real Tracker code path at a few tens of milliseconds per frame on a CPU."""
    import torch
    from ckd_core.config import load_config
    from ckd_core.model import build_inference_model
    from ckd_core.model.checkpoint import save_checkpoint
    cfg = load_config("ckd_tiny")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(build_inference_model(cfg.model), cfg, path)
    return str(path), cfg.tracker
