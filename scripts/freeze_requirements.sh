#!/usr/bin/env bash
# Regenerate requirements.txt from the working .venv. `pip freeze` also lists the
# *.egg-info folders that the ROS 2 wheels carry inside them (rclpy, std_msgs, ...): they are
# not distributions on any index, so pinning them breaks a fresh install. Drop them here.
set -euo pipefail
cd "$(dirname "$0")/.."
sp="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mapfile -t inner < <(cd "$sp" && ls -d *.egg-info 2>/dev/null | sed -E 's/-[0-9].*//' | tr '_.' '--' | tr 'A-Z' 'a-z')
{
  sed -n '1,/^# Regenerate/p' requirements.txt
  .venv/bin/python -m pip freeze --exclude-editable | while IFS= read -r line; do
    name="$(printf '%s' "${line%%==*}" | tr '_.' '--' | tr 'A-Z' 'a-z')"
    skip=0
    for n in "${inner[@]}"; do [ "$n" = "$name" ] && skip=1 && break; done
    [ "$skip" = 0 ] && printf '%s\n' "$line"
  done
} > requirements.txt.new
mv requirements.txt.new requirements.txt
echo "requirements.txt: $(grep -c '==' requirements.txt) pins"
