"""pip-installable stemseg library (stemseg_core + the `stemseg` CLI), without ROS.

  pip install stemseg[runtime]   # inference only, no torch: OpenVINO / ONNX Runtime from an
                                 # engine cache built with `stemseg export`
  pip install stemseg[train]     # + torch: training, evaluation, export, eager inference
  pip install stemseg[all]       # both

The ROS 2 package (messages, node, launch) is built with colcon from package.xml/CMakeLists.txt.
"""
from setuptools import find_packages, setup

#: What the torch-free runtime imports (tracker, preprocessing, clustering, result files).
RUNTIME = [
    "numpy>=1.26",
    "opencv-python-headless>=4.8",
    "scipy>=1.11",
    "pyyaml>=6.0",
    "pycocotools>=2.0.7",
    "tqdm>=4.66",  # stemseg infer's progress
]
#: The backends that run without torch, pinned as in requirements.lock.
RUNTIME_BACKENDS = ["openvino==2026.4.1", "onnxruntime==1.32.0"]
#: Training, evaluation, export and the eager / TensorRT backends.
TRAIN = [
    "torch>=2.4",
    "torchvision>=0.19",
    "trackeval>=1.3.0",
    "scikit-image>=0.22",  # TrackEval's DAVIS J&F (boundary F measure)
    "rosbags>=0.10",
    "rich>=13",
    "matplotlib>=3.8",
    "pillow>=10",  # image headers (INT8 calibration frames), DAVIS palette annotations
    "tensorboard>=2.15",
]
OPENVINO = ["openvino==2026.4.1", "nncf==3.4.0"]
ONNX = ["onnx", "onnxscript", "onnxruntime"]

setup(
    name="stemseg",
    version="0.1.0",
    description="STEm-Seg video instance segmentation and tracking: training, evaluation, export.",
    python_requires=">=3.10",
    packages=find_packages(include=["stemseg_core", "stemseg_core.*"]),
    package_data={"stemseg_core": ["py.typed"]},
    # The base install is the torch-free runtime: `stemseg infer` and the node on OpenVINO or
    # ONNX Runtime from an engine cache built by a machine with torch (`stemseg export`).
    install_requires=RUNTIME,
    # runtime = the base + the two torch-free backends (pip install stemseg[runtime]);
    # train = torch and the training / evaluation / export tools; all = both (make setup
    # installs everything from requirements.lock). Inference backends (stemseg_core/backends):
    # gpu = TensorRT through torch-tensorrt (NVIDIA; scripts/setup.sh installs it where an
    # NVIDIA GPU is present), openvino (+ NNCF for INT8), onnx (ONNX export and ONNX Runtime).
    extras_require={"runtime": RUNTIME_BACKENDS,
                    "train": TRAIN,
                    "all": list(dict.fromkeys(TRAIN + RUNTIME_BACKENDS + OPENVINO + ONNX)),
                    "gpu": ["torch-tensorrt==2.14.0"],
                    "openvino": OPENVINO,
                    "onnx": ONNX},
    entry_points={"console_scripts": ["stemseg = stemseg_core.cli:main"]},
)
