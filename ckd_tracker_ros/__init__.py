"""ROS 2 adapter for ckd_core's Tracker (node, image conversion, pairing, bags).

The rosidl-generated interfaces (`ckd_tracker_ros.msg`, `ckd_tracker_ros.srv`) exist only in
the colcon install space (.ros_ws/install, see scripts/setup_ros.sh), while this folder may be
imported first (the repository root on sys.path, or the editable pip install). Extending
`__path__` with every `ckd_tracker_ros` folder on sys.path lets both halves import together.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
