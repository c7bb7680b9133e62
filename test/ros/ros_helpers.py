"""Helpers shared by the ROS tests: availability check, a background executor, bounded waits."""

from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager

import pytest


@functools.lru_cache(maxsize=1)
def ros_unavailable() -> str:
    """Why the ROS tests cannot run here ('' when they can)."""
    try:
        import rclpy  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"rclpy is not importable ({e}); run `make setup`"
    for module in ("ckd_tracker_ros.msg", "ckd_tracker_ros.srv", "vision_msgs.msg"):
        try:
            __import__(module)
        except Exception as e:  # noqa: BLE001
            return (f"{module} is not importable ({e}): build the ROS package with "
                    "scripts/setup_ros.sh and run through scripts/with_env.sh")
    return ""


def require_ros() -> None:
    """Skip the calling test module (module level) when ROS is not usable, with the reason."""
    reason = ros_unavailable()
    if reason:
        pytest.skip(reason, allow_module_level=True)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.01, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; AssertionError after `timeout` s.
    The default is generous: a passing test never waits for it, and CI machines stall for
    seconds under load."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def spinning(context, *nodes):
    """Spin `nodes` in a background thread for the duration of the block (one thread, as
    `ros2 run` does: the node does its heavy work in its own worker thread)."""
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor(context=context)
    for n in nodes:
        ex.add_node(n)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    try:
        yield ex
    finally:
        ex.shutdown(timeout_sec=5.0)
        t.join(timeout=5.0)


def call_service(client, request, timeout: float = 30.0):
    """Call a service from a test thread while an executor spins the client's node."""
    assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not found"
    future = client.call_async(request)
    wait_for(future.done, timeout, what=f"response from {client.srv_name}")
    return future.result()
