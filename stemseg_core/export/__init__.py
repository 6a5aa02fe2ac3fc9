"""Deployment exports of a trained model: TorchScript, ONNX and TensorRT (FP16) engines."""
