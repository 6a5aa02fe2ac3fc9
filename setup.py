"""pip-installable stemseg library (stemseg_core + the `stemseg` CLI), without ROS.

The ROS 2 package (messages, node, launch) is built with colcon from package.xml/CMakeLists.txt.
"""
from setuptools import find_packages, setup

setup(
    name="stemseg",
    version="0.1.0",
    description="STEm-Seg video instance segmentation and tracking: training, evaluation, export.",
    python_requires=">=3.10",
    packages=find_packages(include=["stemseg_core", "stemseg_core.*"]),
    package_data={"stemseg_core": ["py.typed"]},
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "numpy>=1.26",
        "opencv-python-headless>=4.8",
        "scipy>=1.11",
        "pyyaml>=6.0",
        "pycocotools>=2.0.7",
        "trackeval>=1.3.0",
        "scikit-image>=0.22",  # TrackEval's DAVIS J&F (boundary F measure)
        "rosbags>=0.10",
        "tqdm>=4.66",
        "rich>=13",
        "matplotlib>=3.8",
        "tensorboard>=2.15",
    ],
    # Inference backends (stemseg_core/backends): gpu = TensorRT through torch-tensorrt (NVIDIA;
    # scripts/setup.sh installs it where an NVIDIA GPU is present), openvino (+ NNCF for INT8),
    # onnx (ONNX export and ONNX Runtime).
    extras_require={"gpu": ["torch-tensorrt==2.14.0"],
                    "openvino": ["openvino==2026.4.1", "nncf==3.4.0"],
                    "onnx": ["onnx", "onnxscript", "onnxruntime"]},
    entry_points={"console_scripts": ["stemseg = stemseg_core.cli:main"]},
)
