//! What the tests share: the workspace root and ONNX Runtime's library
//! from the PyPI wheel (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The wheel's `libonnxruntime.so.*`.
pub fn library() -> PathBuf {
    let o = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os, glob; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so.*'))[0])",
        ])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "onnxruntime from PyPI is needed: python3 -m pip install onnxruntime onnx numpy\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}
