"""Inference without torch: the models exported to ONNX at build time and run with ONNX Runtime (numpy,
onnxruntime and tokenizers only), so the Blender extension can generate motion inside stock Blender."""
