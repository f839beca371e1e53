"""The reference for candor-detect: the same model in onnxruntime (PyPI), and
onnxruntime's own NonMaxSuppression operator for the post-processing, on the
same RGB frames. Prints one JSON list per frame of [label, score, x, y, w, h].

Usage: ssd_reference.py MODEL FRAMES.rgb MIN_SCORE [PASSES]
With PASSES, prints instead one JSON object: the median ms per frame
(normalisation, inference and NMS) over PASSES passes, for bench/objects.py.
"""
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

SIDE = 300
LABELS = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}

model, frames, min_score = sys.argv[1], sys.argv[2], float(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = 1
ssd = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

# NonMaxSuppression per class: boxes [1, N, 4] as (y1, x1, y2, x2), scores
# [1, C, N]; IoU 0.5, at most 100 per class.
graph = helper.make_graph(
    [helper.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou", "min"], ["sel"])],
    "nms",
    [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, None, None]),
    ],
    [helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])],
    initializer=[
        helper.make_tensor("max", TensorProto.INT64, [1], [100]),
        helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.5]),
        helper.make_tensor("min", TensorProto.FLOAT, [1], [min_score]),
    ],
)
nms_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
nms = ort.InferenceSession(nms_model.SerializeToString(), providers=["CPUExecutionProvider"])

raw = np.fromfile(frames, dtype=np.uint8).reshape(-1, SIDE, SIDE, 3)
classes = sorted(LABELS)


def detect(f):
    x = f.astype(np.float32)[None] * np.float32(2.0 / 255.0) - np.float32(1.0)
    scores, boxes = ssd.run(None, {ssd.get_inputs()[0].name: x})
    b = np.clip(boxes[0, :, 0, :], 0.0, 1.0)  # y1, x1, y2, x2
    s = scores[0][:, classes].T.copy()  # [C, N]
    # Degenerate boxes after clipping are not objects.
    flat = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    s[:, flat] = 0.0
    sel = nms.run(None, {"boxes": b[None], "scores": s[None]})[0]
    out = []
    for _, c, i in sel:
        y1, x1, y2, x2 = (float(v) for v in b[i])
        out.append([LABELS[classes[c]], float(s[c, i]), x1, y1, x2 - x1, y2 - y1])
    return out


if len(sys.argv) > 4:
    for f in raw[:3]:
        detect(f)
    ms, found = [], 0
    for _ in range(int(sys.argv[4])):
        for f in raw:
            t = time.perf_counter()
            found += len(detect(f))
            ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    print(json.dumps({"median_ms": round(ms[len(ms) // 2], 3), "frames": len(ms), "detections": found}))
else:
    for f in raw:
        print(json.dumps(detect(f)))
