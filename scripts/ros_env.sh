# shellcheck shell=bash
# Put the colcon install space of scripts/setup_ros.sh (.ros_ws/install: ckd_tracker_ros, and
# the vision_msgs stand-in where it was built) on the paths ROS 2 and Python search:
# AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH, PYTHONPATH, LD_LIBRARY_PATH, PATH.
# Sourced by scripts/with_env.sh after the venv is activated; does nothing when nothing was
# built. Safe under `set -euo pipefail` and prints nothing. In a pip-only set-up the venv is
# the underlay (it holds the ROS 2 wheels), so it is added to AMENT_PREFIX_PATH too.
_ckd_ws="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.ros_ws/install"

_ckd_prepend() {  # _ckd_prepend VAR DIR: DIR first in VAR, once
  local var="$1" dir="$2" cur
  cur="${!var:-}"
  case ":$cur:" in *":$dir:"*) return 0 ;; esac
  if [ -n "$cur" ]; then export "$var=$dir:$cur"; else export "$var=$dir"; fi
}

if [ -n "${VIRTUAL_ENV:-}" ] && [ -d "$VIRTUAL_ENV/share/ament_index" ] \
   && [[ ":${AMENT_PREFIX_PATH:-}:" != *":$VIRTUAL_ENV:"* ]]; then
  if [ -n "${AMENT_PREFIX_PATH:-}" ]; then
    export AMENT_PREFIX_PATH="$AMENT_PREFIX_PATH:$VIRTUAL_ENV"
  else
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  fi
fi

if [ -f "$_ckd_ws/../.ckd-built" ]; then
  for _ckd_pkg in "$_ckd_ws"/*/; do
    _ckd_pkg="${_ckd_pkg%/}"
    [ -d "$_ckd_pkg/share" ] || continue
    _ckd_prepend AMENT_PREFIX_PATH "$_ckd_pkg"
    _ckd_prepend CMAKE_PREFIX_PATH "$_ckd_pkg"
    [ -d "$_ckd_pkg/lib" ] && _ckd_prepend LD_LIBRARY_PATH "$_ckd_pkg/lib"
    [ -d "$_ckd_pkg/bin" ] && _ckd_prepend PATH "$_ckd_pkg/bin"
    for _ckd_site in "$_ckd_pkg"/lib/python3*/site-packages "$_ckd_pkg"/local/lib/python3*/dist-packages \
                     "$_ckd_pkg"/lib/python3*/dist-packages; do
      if [ -d "$_ckd_site" ]; then _ckd_prepend PYTHONPATH "$_ckd_site"; fi
    done
  done
  unset _ckd_pkg _ckd_site
fi
unset _ckd_ws
unset -f _ckd_prepend
