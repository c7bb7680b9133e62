"""Start the ckd_tracker node like launch/tracker.launch.py does, without launch_ros.

launch_ros is not on PyPI, so a pip-only ROS 2 has no `ros2 launch`. This runs the installed
`tracker_node` with the same arguments, remappings and parameters file:

    python -m ckd_tracker_ros.launch_fallback rgb_topic:=/cam/rgb/image_raw \\
        thermal_topic:=/cam/thermal/image_raw params_file:=config/uav.yaml namespace:=uav

Arguments (`name:=value`, as with ros2 launch) are `LAUNCH_ARGUMENTS`, shared with the launch
file so the two cannot drift apart; `--dry-run` prints the command instead of running it.
With a ROS distro, use the real one: `ros2 launch ckd_tracker_ros tracker.launch.py ...`.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Mapping, Sequence

PACKAGE = "ckd_tracker_ros"
NODE_NAME = "ckd_tracker"

# (name, default, description). An empty params_file means the installed config/tracker.yaml.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("rgb_topic", "rgb/image", "RGB image topic (sensor_msgs/Image; its /compressed "
     "sibling when rgb_compressed is set)"),
    ("thermal_topic", "thermal/image", "thermal image topic (same rules)"),
    ("params_file", "", "ROS parameters file; empty = share/ckd_tracker_ros/config/tracker.yaml"),
    ("namespace", "", "namespace of the node (and of its relative topics)"),
    ("use_sim_time", "false", "use /clock (true when replaying bags with --clock)"),
    ("log_level", "info", "debug, info, warn, error or fatal"),
    ("device", "", "cpu, cuda, cuda:N or auto; empty = as the parameters file says"),
)


def default_params_file() -> str:
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory(PACKAGE), "config", "tracker.yaml")


def remappings(rgb_topic: str, thermal_topic: str) -> list[tuple[str, str]]:
    """The node's relative image topics -> the given ones (raw and compressed)."""
    return [("rgb/image", rgb_topic), ("rgb/image/compressed", rgb_topic + "/compressed"),
            ("thermal/image", thermal_topic),
            ("thermal/image/compressed", thermal_topic + "/compressed")]


def parse_bool(text: str, name: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"launch argument {name}:={text!r}: expected true or false")


def parameter_overrides(values: Mapping[str, str]) -> dict[str, object]:
    """Parameters set by launch arguments on top of the parameters file."""
    params: dict[str, object] = {"use_sim_time": parse_bool(values["use_sim_time"],
                                                            "use_sim_time")}
    if values["device"]:
        params["device"] = values["device"]
    return params


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """['name:=value', ...] -> every launch argument's value (defaults filled in)."""
    values = {name: default for name, default, _ in LAUNCH_ARGUMENTS}
    for arg in argv:
        name, sep, value = arg.partition(":=")
        if not sep or name not in values:
            known = ", ".join(n for n, _, _ in LAUNCH_ARGUMENTS)
            raise ValueError(f"unknown launch argument {arg!r}; use name:=value with name in: "
                             f"{known}")
        values[name] = value
    return values


def node_executable() -> list[str]:
    """The installed tracker_node (what `ros2 run ckd_tracker_ros tracker_node` runs)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        prefix = get_package_prefix(PACKAGE)
    except PackageNotFoundError:
        raise RuntimeError(f"{PACKAGE} is not installed on AMENT_PREFIX_PATH: run `make setup` "
                           "and use scripts/with_env.sh (or source scripts/ros_env.sh)") from None
    exe = os.path.join(prefix, "lib", PACKAGE, "tracker_node")
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"{exe} is missing or not executable: rebuild with make setup")
    return [exe]


def node_command(values: Mapping[str, str]) -> list[str]:
    """The full command line that starts the node for these launch argument values."""
    params_file = values["params_file"] or default_params_file()
    if not os.path.isfile(params_file):
        raise ValueError(f"params_file {params_file!r} does not exist")
    cmd = node_executable() + ["--ros-args", "-r", f"__node:={NODE_NAME}"]
    if values["namespace"]:
        ns = values["namespace"]
        cmd += ["-r", f"__ns:={ns if ns.startswith('/') else '/' + ns}"]
    for src, dst in remappings(values["rgb_topic"], values["thermal_topic"]):
        cmd += ["-r", f"{src}:={dst}"]
    cmd += ["--params-file", os.path.abspath(params_file)]
    for name, value in parameter_overrides(values).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{name}:={text}"]
    cmd += ["--log-level", values["log_level"]]
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    dry = "--dry-run" in argv
    if dry:
        argv.remove("--dry-run")
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        for name, default, desc in LAUNCH_ARGUMENTS:
            print(f"  {name}:={default!r:<16} {desc}")
        return 0
    try:
        cmd = node_command(parse_arguments(argv))
    except (ValueError, RuntimeError) as e:
        print(f"launch_fallback: {e}", file=sys.stderr)
        return 2
    print("[launch_fallback] " + shlex.join(cmd), flush=True)
    if dry:
        return 0
    os.execv(cmd[0], cmd)  # the node gets our PID: signals (Ctrl-C, SIGTERM) reach it directly
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
