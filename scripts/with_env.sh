#!/usr/bin/env bash
# Run a command inside the project's environment: the .venv, plus the colcon install space
# of the ROS package (our interfaces, and the vision_msgs stand-in where no real one exists)
# when it has been built by scripts/setup_ros.sh.
set -eo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
if [ -f "$root/scripts/ros_env.sh" ]; then
  # shellcheck disable=SC1091
  source "$root/scripts/ros_env.sh"
fi
exec "$@"
