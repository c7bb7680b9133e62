"""Start the ckd_tracker node (needs launch_ros: a ROS distro).

    ros2 launch ckd_tracker_ros tracker.launch.py rgb_topic:=/cam/rgb/image_raw \
        thermal_topic:=/cam/thermal/image_raw params_file:=<share>/config/uav.yaml

Arguments, remappings and parameter overrides come from ckd_tracker_ros.launch_fallback, which
starts the same node the same way where launch_ros is not installed (pip-only ROS 2):
    python -m ckd_tracker_ros.launch_fallback rgb_topic:=... thermal_topic:=...
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ckd_tracker_ros import launch_fallback as spec


def _node(context):
    values = {name: LaunchConfiguration(name).perform(context)
              for name, _, _ in spec.LAUNCH_ARGUMENTS}
    params_file = values["params_file"] or spec.default_params_file()
    return [Node(
        package=spec.PACKAGE,
        executable="tracker_node",
        name=spec.NODE_NAME,
        namespace=values["namespace"],
        parameters=[params_file, spec.parameter_overrides(values)],
        remappings=spec.remappings(values["rgb_topic"], values["thermal_topic"]),
        ros_arguments=["--log-level", values["log_level"]],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, default, desc in spec.LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=_node)])
