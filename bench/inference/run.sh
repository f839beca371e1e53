#!/usr/bin/env bash
# Object detection's runtime, measured side by side (docs/design/objects.md):
# the shared COCO models on one thread in onnxruntime (Python, the reference),
# in the same libonnxruntime through the `ort` crate, and in tract-onnx.
#   python3 -m pip install onnxruntime numpy && bash bench/inference/run.sh
set -euo pipefail
# (The Python script is not called onnxruntime.py: it would shadow the module.)
cd "$(dirname "$0")"
models="${MODELS:-../../../shared/models}"
lib="$(python3 -c 'import onnxruntime, os, glob; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.*"))[0])')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/candor-bench-inference}"
cargo build -q --release --manifest-path tract/Cargo.toml
cargo build -q --release --manifest-path ort/Cargo.toml
for m in "centernet.onnx 512" "ssd_cut.onnx 300"; do
  set -- $m
  python3 reference.py "$models/$1" "$2"
  ORT_LIB="$lib" "$CARGO_TARGET_DIR/release/bench-ort" "$models/$1" "$2"
  "$CARGO_TARGET_DIR/release/bench-tract" "$models/$1" "$2"
done
