//! A library in a folder others can write to is refused (whoever writes
//! there can swap the file). Its own test binary: see `library.rs`.

use candor_detect::{DetectError, Runtime};
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_library_in_a_folder_others_can_write_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let lib = dir.path().join("libonnxruntime.so.1");
    std::fs::write(&lib, b"\x7fELF not really").unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Runtime::load(&lib).err().expect("refused");
    assert!(
        matches!(&e, DetectError::Library { why, .. } if why.contains("a folder others can write to")),
        "{e}"
    );
    assert!(e.to_string().contains("README"), "says what to do: {e}");
    // A link from a safe folder to it is followed, and refused the same.
    let safe = tempfile::tempdir().unwrap();
    std::fs::set_permissions(safe.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = safe.path().join("libonnxruntime.so");
    std::os::unix::fs::symlink(&lib, &link).unwrap();
    let e = Runtime::load(&link).err().expect("refused through a link");
    assert!(
        e.to_string().contains("a folder others can write to"),
        "{e}"
    );
    // A relative name is refused (the loader would search for it elsewhere).
    let e = Runtime::load(std::path::Path::new("libonnxruntime.so.1"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("absolute"), "{e}");
}
