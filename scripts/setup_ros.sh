#!/usr/bin/env bash
# Placeholder until the ROS 2 package lands: nothing to build yet.
echo "[setup-ros] no ROS package to build yet"
