"""Starting the node: the installed executable, the fallback launcher, the launch file.

launch_ros is not pip-installable; the launch file is tested where it is importable (a ROS
distro) and skipped with the reason otherwise. The fallback launcher (our code) is always
tested, by starting the real node in a subprocess and talking to it over DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ros_helpers import require_ros

require_ros()

import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from ckd_tracker_ros import launch_fallback as fb  # noqa: E402
from ckd_tracker_ros.msg import TrackerStatus  # noqa: E402
from ros_helpers import wait_for  # noqa: E402


def test_fallback_command_line():
    cmd = fb.node_command(fb.parse_arguments([
        "rgb_topic:=/cam/rgb", "thermal_topic:=/cam/ir", "namespace:=uav",
        "use_sim_time:=true", "device:=cuda:0", "log_level:=debug"]))
    assert cmd[0].endswith("lib/ckd_tracker_ros/tracker_node") and os.access(cmd[0], os.X_OK)
    text = " ".join(cmd)
    for part in ("-r __node:=ckd_tracker", "-r __ns:=/uav", "-r rgb/image:=/cam/rgb",
                 "-r rgb/image/compressed:=/cam/rgb/compressed", "-r thermal/image:=/cam/ir",
                 "-p use_sim_time:=true", "-p device:=cuda:0", "--log-level debug"):
        assert part in text
    default = os.path.join(get_package_share_directory("ckd_tracker_ros"), "config",
                           "tracker.yaml")
    assert cmd[cmd.index("--params-file") + 1] == default and os.path.isfile(default)
    assert "-p device" not in " ".join(fb.node_command(fb.parse_arguments([])))


@pytest.mark.parametrize("argv,match", [
    (["rgb:=/x"], "unknown launch argument 'rgb:=/x'"),
    (["rgb_topic=/x"], "unknown launch argument"),
    (["use_sim_time:=maybe"], "expected true or false"),
    (["params_file:=/nonexistent.yaml"], "does not exist"),
])
def test_fallback_rejects_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        fb.node_command(fb.parse_arguments(argv))


def test_installed_config_files():
    share = get_package_share_directory("ckd_tracker_ros")
    for name in ("tracker.yaml", "uav.yaml", "robot.yaml"):
        assert os.path.isfile(os.path.join(share, "config", name))
    assert os.path.isfile(os.path.join(share, "launch", "tracker.launch.py"))
    assert not os.path.exists(os.path.join(share, "config", "presets"))


def _run(args, timeout=120):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def test_executable_exits_cleanly_on_a_bad_checkpoint():
    exe = fb.node_executable()[0]
    res = _run([exe, "--ros-args", "-p", "checkpoint:=/nonexistent/model.safetensors"])
    assert res.returncode == 2, res.stderr
    assert "cannot start" in res.stderr and "/nonexistent/model.safetensors" in res.stderr


def test_executable_exits_cleanly_on_a_bad_parameter():
    res = _run([fb.node_executable()[0], "--ros-args", "-p", "qos_reliability:=sometimes"])
    assert res.returncode == 2
    assert "'qos_reliability' = 'sometimes' is not allowed" in res.stderr


def test_fallback_launcher_starts_the_node(ros_context, tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    params = tmp_path / "params.yaml"
    params.write_text("/**/ckd_tracker:\n  ros__parameters:\n"
                      f"    checkpoint: '{path}'\n    label: 'from_file'\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ckd_tracker_ros.launch_fallback", "namespace:=fb",
         "rgb_topic:=/cam/rgb", "thermal_topic:=/cam/ir", f"params_file:={params}",
         "device:=cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = rclpy.create_node("launch_probe", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    try:
        # Graph queries need no spinning: rmw keeps the graph up to date.
        def node_up():
            assert proc.poll() is None, proc.stdout.read()
            return ("ckd_tracker", "/fb") in probe.get_node_names_and_namespaces()
        wait_for(node_up, timeout=60.0, interval=0.1, what="/fb/ckd_tracker")

        def remapped():
            subs = {t: probe.get_subscriptions_info_by_topic(t) for t in ("/cam/rgb", "/cam/ir")}
            return all(any(i.node_name == "ckd_tracker" and i.node_namespace == "/fb"
                           for i in infos) for infos in subs.values())
        wait_for(remapped, timeout=30.0, interval=0.1, what="subscriptions on the remapped topics")
        # The status heartbeat starts once the node is fully built and spinning.
        status = []
        probe.create_subscription(TrackerStatus, "/fb/ckd_tracker/status", status.append, 10)
        ex.add_node(probe)

        def spin_until_status():
            ex.spin_once(timeout_sec=0.1)
            return status
        wait_for(spin_until_status, timeout=30.0, interval=0, what="a status message")
        assert status[0].state == TrackerStatus.IDLE
        names = dict(probe.get_service_names_and_types_by_node("ckd_tracker", "/fb"))
        assert names["/fb/ckd_tracker/init_target"] == ["ckd_tracker_ros/srv/InitTarget"]
        pubs = dict(probe.get_publisher_names_and_types_by_node("ckd_tracker", "/fb"))
        assert pubs["/fb/ckd_tracker/detections"] == ["vision_msgs/msg/Detection2DArray"]
    finally:
        ex.shutdown()
        probe.destroy_node()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"the node did not stop on SIGINT:\n{out}")
    assert proc.returncode == 0, out
    assert "[launch_fallback]" in out and "model ready on cpu" in out


def test_launch_file_with_launch_ros(tiny_checkpoint, tmp_path):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on PyPI); "
                        "ckd_tracker_ros.launch_fallback replaces `ros2 launch` here")
    import importlib.util

    from launch.actions import DeclareLaunchArgument
    path = os.path.join(get_package_share_directory("ckd_tracker_ros"), "launch",
                        "tracker.launch.py")
    spec = importlib.util.spec_from_file_location("tracker_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    declared = [e.name for e in ld.entities if isinstance(e, DeclareLaunchArgument)]
    assert declared == [name for name, _, _ in fb.LAUNCH_ARGUMENTS]
    # Run it for real: the node must come up under the namespace given.
    from launch import LaunchService
    params = tmp_path / "params.yaml"
    params.write_text("/**/ckd_tracker:\n  ros__parameters:\n"
                      f"    checkpoint: '{tiny_checkpoint[0]}'\n")
    ls = LaunchService(argv=["namespace:=lr", "device:=cpu", f"params_file:={params}"],
                       noninteractive=True)
    ls.include_launch_description(ld)
    t = threading.Thread(target=ls.run, daemon=True)
    t.start()
    try:
        probe_ctx = rclpy.context.Context()
        rclpy.init(context=probe_ctx)
        probe = rclpy.create_node("launch_ros_probe", context=probe_ctx)
        deadline = time.monotonic() + 60
        while ("ckd_tracker", "/lr") not in probe.get_node_names_and_namespaces():
            assert time.monotonic() < deadline, "node from the launch file did not appear"
            time.sleep(0.2)
        probe.destroy_node()
        rclpy.try_shutdown(context=probe_ctx)
    finally:
        ls.shutdown()
        t.join(timeout=20)
