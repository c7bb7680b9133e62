"""pip-installable core (`ckd_core`) and ROS adapter sources (`ckd_tracker_ros`).

`pip install .` gives researchers everything without ROS. The ROS package at the repository
root is built by colcon through package.xml / CMakeLists.txt (ament_cmake); it does not use
this file. Exact, mutually compatible versions live in requirements.txt (the one pin file).
"""

from setuptools import setup

setup(
    name="ckd-tracker",
    version="0.1.0",
    description="CKD (Coupled Knowledge Distillation) RGB-thermal tracker with a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "ckd_core",
        "ckd_core.presets",
        "ckd_core.weights",
        "ckd_core.model",
        "ckd_core.data",
        "ckd_core.train",
        "ckd_core.tracking",
        "ckd_core.evaluation",
        "ckd_core.cli",
        "ckd_tracker_ros",
    ],
    # Presets live in config/presets and the shipped model in models/ (where users look);
    # both are installed inside the package so they are found without any path guessing.
    package_dir={"ckd_core.presets": "config/presets", "ckd_core.weights": "models"},
    package_data={"ckd_core.presets": ["*.yaml"], "ckd_core.weights": ["*.safetensors", "*.json", "*.md"]},
    install_requires=[
        "torch", "torchvision", "timm", "numpy", "pyyaml", "safetensors", "thop",
        "opencv-python-headless", "matplotlib", "tqdm", "tensorboard",
    ],
    extras_require={
        "ros": ["rosbags", "rosbags-image"],
        "fast": ["onnx", "onnxruntime"],
        "test": ["pytest", "pytest-timeout", "hypothesis", "psutil"],
    },
    entry_points={"console_scripts": ["ckd = ckd_core.cli:main"]},
)
