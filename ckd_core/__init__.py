"""ckd_core: the CKD RGB-thermal tracker without ROS (model, losses, data, training,
tracking, evaluation). Import submodules directly; this package keeps imports light."""

__version__ = "0.1.0"
