#!/usr/bin/python3
"""ONNX Runtime's own int8 for the bench towers: ort_quantize.py ONNX_DIR OUT_DIR

Dynamic quantization (onnxruntime.quantization.quantize_dynamic: s8 weights per channel, activations quantized
at run time) of the MatMul / Gemm nodes of image.onnx and text.onnx that bench/peer/clip_onnx.py exported
(the patch convolution stays fp32: ORT's ConvInteger has no s8-weight kernel); the batch files and towers.json are
copied beside them, so bench/peer/ort_tower_bench.js runs OUT_DIR as it runs ONNX_DIR (with ORT_TOL raised: the
embeddings are int8's, not the peer's to 1e-4). Needs the onnx and onnxruntime Python packages (pip).
"""
import os
import shutil
import sys

from onnxruntime.quantization import QuantType, quantize_dynamic

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    if name.endswith(".onnx"):
        quantize_dynamic(os.path.join(src, name), os.path.join(dst, name), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])
    else:
        shutil.copy(os.path.join(src, name), dst)
print(f"quantized {src} -> {dst}")
