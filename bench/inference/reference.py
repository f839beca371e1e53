"""ONNX Runtime from Python (PyPI onnxruntime), one thread: the reference the
issue names. Usage: reference.py MODEL SIZE [RUNS]."""
import sys
import time

import numpy as np
import onnxruntime as ort

path, size = sys.argv[1], int(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
# The same pattern as the Rust contenders.
y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
inp = ((x * 7 + y * 3 + c * 11) % 255).astype(np.float32)[None]
v = []
for i in range(runs + 3):
    t = time.perf_counter()
    s.run(None, {name: inp})
    if i >= 3:
        v.append((time.perf_counter() - t) * 1e3)
v.sort()
print(f"{path}: onnxruntime {ort.__version__} (Python), 1 thread: "
      f"median {v[len(v) // 2]:.1f} ms, min {v[0]:.1f} ms over {len(v)} runs")
