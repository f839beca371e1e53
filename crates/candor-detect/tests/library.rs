//! The ONNX Runtime library is code that runs inside the recorder: a copy
//! that someone other than its owner could have replaced is refused before
//! it is loaded. (Its own test binary: a process loads the library once,
//! and keeps it.)

use candor_detect::{DetectError, Runtime};
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_library_others_could_change_is_refused_before_it_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Not a real library: it is never opened, the check comes first.
    let lib = dir.path().join("libonnxruntime.so.1");
    std::fs::write(&lib, b"\x7fELF not really").unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    match Runtime::load(&lib) {
        Err(DetectError::Library { why, .. }) => {
            assert!(why.contains("can be changed by others"), "{why}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a world-writable library was loaded"),
    }
}
