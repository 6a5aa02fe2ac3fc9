"""``openvino``: the backend (backend.py) and its INT8 calibration (int8.py), which writes the
quantized IR the backend runs for inference.precision=int8."""
from stemseg_core.backends.openvino.backend import OpenVinoBackend

__all__ = ["OpenVinoBackend"]
