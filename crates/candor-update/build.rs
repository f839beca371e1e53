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
            let path = std::path::Path::new(&p);
            // Relative paths would be resolved against this crate's folder,
            // not where the builder stands: refused, not guessed.
            assert!(
                path.is_absolute(),
                "CANDOR_RELEASE_ROOT must be an absolute path, not {}",
                path.display()
            );
            println!("cargo:rerun-if-changed={}", path.display());
            let root = std::fs::read(path)
                .unwrap_or_else(|e| panic!("CANDOR_RELEASE_ROOT {}: {e}", path.display()));
            // A TUF root, or a mistake to stop at build time rather than in
            // the field (its signatures are checked by tough when used).
            let v: serde_json::Value = serde_json::from_slice(&root).unwrap_or_else(|e| {
                panic!("CANDOR_RELEASE_ROOT {}: not JSON: {e}", path.display())
            });
            assert!(
                v["signed"]["_type"] == "root"
                    && !v["signatures"].as_array().is_none_or(Vec::is_empty),
                "CANDOR_RELEASE_ROOT {} is not a signed TUF root.json",
                path.display()
            );
            std::fs::write(&out, root).expect("writing the built-in root");
        }
        None => std::fs::write(&out, b"").expect("writing the built-in root"),
    }
}
