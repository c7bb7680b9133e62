#!/usr/bin/env bash
# Build the ROS 2 side into .ros_ws/{build,install,log} (ignored by git):
#   - the vision_msgs stand-in (ros/vision_msgs_standin), only when no real vision_msgs is
#     installed; it has its own --base-paths because colcon never looks inside a package;
#   - this repository's package ckd_tracker_ros (interfaces + Python node + launch + config).
# scripts/ros_env.sh then puts the install space on the paths (scripts/with_env.sh sources it).
#
# Two modes, chosen automatically:
#   pip-only (default): ROS 2 Kilted comes from the PyPI wheels in .venv (scripts/setup_env.sh).
#     The wheels' exported CMake files name the wheel builder's Python and numpy include dirs
#     (/opt/python/cp311-cp311/...); they are rewritten to this venv's once, then colcon runs
#     with AMENT_PREFIX_PATH = CMAKE_PREFIX_PATH = the venv and -DPython3_EXECUTABLE = its python.
#   ROS distro: when a distro is sourced (ROS_DISTRO set, e.g. `source /opt/ros/humble/setup.bash`)
#     the script just runs colcon against it, with the distro's python3; install
#     vision_msgs/message_filters/cv_bridge from the distro (apt) and ckd_core with
#     `pip install .` into that python.
#
# Idempotent: a stamp holds a hash of everything the build reads (package files, interface
# definitions, the list of installed files, this script, the mode); a re-run with nothing
# changed returns at once. Python sources are installed as symlinks (--symlink-install), so
# editing them needs no rebuild; adding or removing a file does (the stamp notices).
# Set CKD_ROS_FORCE=1 to rebuild anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
ws="$root/.ros_ws"
say() { echo "[setup-ros] $*"; }
die() { echo "[setup-ros] error: $*" >&2; exit 1; }

# One run at a time (two `make test` at once would share the build folder); the second one
# then finds the build up to date.
mkdir -p "$ws"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ws/.setup.lock"
  flock 9
fi

# --- mode -----------------------------------------------------------------------------------
if [ -n "${ROS_DISTRO:-}" ] && [ -n "${AMENT_PREFIX_PATH:-}" ] && command -v colcon >/dev/null 2>&1; then
  mode="distro:$ROS_DISTRO"
  py="$(command -v python3)"
  colcon=(colcon)
  prefixes="$AMENT_PREFIX_PATH"
else
  mode="pip"
  py="$root/.venv/bin/python"
  [ -x "$py" ] || die "no .venv; run scripts/setup_env.sh (or make setup-python) first"
  "$py" -c "import rclpy, rosidl_generator_py, colcon_core" 2>/dev/null \
    || die "the ROS 2 wheels or colcon are missing from .venv; re-run scripts/setup_env.sh"
  venv="$root/.venv"
  colcon=("$venv/bin/colcon")
  prefixes="$venv"
  # Rewrite the wheel builder's include dirs in the exported CMake targets (once; no root).
  py_include="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_include="$("$py" -c 'import numpy; print(numpy.get_include())')"
  [ -f "$py_include/Python.h" ] || die "Python headers not found in $py_include (install python3.11-dev)"
  mapfile -t to_fix < <(grep -l -e '/opt/python/cp311-cp311/' "$venv"/share/*/cmake/*Export*.cmake 2>/dev/null || true)
  if [ "${#to_fix[@]}" -gt 0 ]; then
    say "fixing ${#to_fix[@]} exported CMake files of the ROS wheels"
    sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${np_include}#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#${py_include}#g" \
      "${to_fix[@]}"
  fi
fi

# --- is a real vision_msgs there? (ignoring our own install space) ---------------------------
have_vision_msgs=no
IFS=':' read -r -a prefix_list <<< "$prefixes"
for p in "${prefix_list[@]}"; do
  case "$p" in "$ws"/*) continue ;; esac
  if [ -n "$p" ] && [ -f "$p/share/ament_index/resource_index/packages/vision_msgs" ]; then
    have_vision_msgs=yes
  fi
done
# The root package is built from a staging folder of symlinks (.ros_ws/src/ckd_tracker_ros):
# CMake refuses to export include directories that lie inside the package's source folder, and
# in a pip-only set-up the venv's numpy headers (.venv/...) do.
# The install space's Python files link through it, so it is only ever added to, never
# removed: a running test or node keeps working while this script re-runs.
stage="$ws/src/ckd_tracker_ros"
mkdir -p "$stage"
for f in package.xml CMakeLists.txt msg srv ckd_tracker_ros launch config; do
  [ "$(readlink "$stage/$f" || true)" = "$root/$f" ] || ln -sfn "$root/$f" "$stage/$f"
done
base_paths=("$stage")
if [ "$have_vision_msgs" = no ]; then
  base_paths+=("$root/ros/vision_msgs_standin")
elif [ -d "$ws/install/vision_msgs" ]; then
  say "a real vision_msgs is installed: removing the stand-in built earlier"
  rm -rf "$ws/install/vision_msgs" "$ws/build/vision_msgs"
fi

# --- up to date? ----------------------------------------------------------------------------
stamp="$ws/.ckd-built"
want="$( {
  echo "$mode $py $have_vision_msgs"
  cat scripts/setup_ros.sh package.xml CMakeLists.txt msg/* srv/*
  find ros/vision_msgs_standin ckd_tracker_ros launch config -type f \
       -not -path '*/__pycache__/*' -not -path 'config/presets/*' | LC_ALL=C sort
  cat ros/vision_msgs_standin/package.xml ros/vision_msgs_standin/CMakeLists.txt ros/vision_msgs_standin/msg/*
} | sha256sum | cut -d' ' -f1)"
if [ -z "${CKD_ROS_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -d "$ws/install/ckd_tracker_ros" ]; then
  say "ROS packages are up to date ($ws/install)"
  exit 0
fi

# --- build ----------------------------------------------------------------------------------
rm -f "$stamp"
what="ckd_tracker_ros"
[ "$have_vision_msgs" = no ] && what="vision_msgs stand-in + $what"
say "building $what with colcon ($mode; about 1-2 minutes the first time)"
build_log="$ws/colcon_build.log"
start=$SECONDS
set +e
(
  if [ "$mode" = pip ]; then
    export AMENT_PREFIX_PATH="$prefixes" CMAKE_PREFIX_PATH="$prefixes"
    unset COLCON_PREFIX_PATH
  fi
  "${colcon[@]}" --log-base "$ws/log" build \
    --base-paths "${base_paths[@]}" \
    --build-base "$ws/build" --install-base "$ws/install" \
    --symlink-install \
    --event-handlers console_direct- console_cohesion+ status- summary+ \
    --cmake-args -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
) > "$build_log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
  tail -n 40 "$build_log" >&2
  die "colcon build failed (exit $rc); full log: $build_log (per-package logs under $ws/log/latest_build)"
fi
echo "$want" > "$stamp"
say "built in $((SECONDS - start)) s into $ws/install"
