"""Texts to vectors: the model, its PyTorch and ONNX (float32, int8) encoders, the corpus cache, micro-batching."""
