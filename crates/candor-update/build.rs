//! The project's release root, built in: an official build is made with
//! `CANDOR_RELEASE_ROOT=/path/to/root.json` (public keys only; the private
//! halves stay with the root key holders, offline). Without it the build
//! has none, and `candor update --root FILE` / `[updates] root` name one.

fn main() {
    println!("cargo:rerun-if-env-changed=CANDOR_RELEASE_ROOT");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("release-root.json");
    match std::env::var_os("CANDOR_RELEASE_ROOT") {
        Some(p) => {
            println!("cargo:rerun-if-changed={}", std::path::Path::new(&p).display());
            let root = std::fs::read(&p)
                .unwrap_or_else(|e| panic!("CANDOR_RELEASE_ROOT {}: {e}", p.to_string_lossy()));
            // A root is JSON with a signed root role; anything else is a
            // mistake to stop at build time, not in the field.
            let text = String::from_utf8_lossy(&root);
            assert!(
                text.contains("\"_type\"") && text.contains("\"root\""),
                "CANDOR_RELEASE_ROOT {} is not a TUF root.json",
                p.to_string_lossy()
            );
            std::fs::write(&out, root).expect("writing the built-in root");
        }
        None => std::fs::write(&out, b"").expect("writing the built-in root"),
    }
}
