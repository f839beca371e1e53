//! The server certificate both web servers use: the configured PEM pair, or
//! one generated at first start (ECDSA P-256, valid for localhost and the
//! loopback addresses) and kept in a directory of the data dir.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct Loaded {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…`, the form browsers show.
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// True when this call generated the pair.
    pub generated: bool,
}

/// `section` names the config section in error messages (e.g. `[web]`), so
/// the user knows which `cert`/`key` to fix.
pub fn load_or_generate(
    dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    section: &str,
) -> Result<Loaded, String> {
    load_or_generate_for(dir, cert, key, section, &[])
}

/// [`load_or_generate`], with a generated certificate that also covers
/// `hostnames` (DNS names or IP addresses the operator configured). A
/// generated certificate that does not cover exactly those names is made
/// again (`names.txt` beside it records what it covers).
pub fn load_or_generate_for(
    dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    section: &str,
    hostnames: &[String],
) -> Result<Loaded, String> {
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        (None, None) => {
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let mut names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            // Sorted and without repeats: the same names in another order
            // must not make a new key (recorders trust this certificate).
            let mut extra: Vec<String> = hostnames
                .iter()
                .filter(|h| !names.contains(h))
                .cloned()
                .collect();
            extra.sort();
            extra.dedup();
            names.extend(extra);
            let record = dir.join("names.txt");
            let covered =
                std::fs::read_to_string(&record).unwrap_or_else(|_| names[..3].join("\n"));
            let generated = !(c.exists() && k.exists()) || covered != names.join("\n");
            if generated {
                generate(dir, &c, &k, names.clone())?;
                std::fs::write(&record, names.join("\n"))
                    .map_err(|e| format!("writing {}: {e}", record.display()))?;
            }
            (c, k, generated)
        }
        _ => return Err(format!("{section} cert and key must be given together")),
    };
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .map_err(|e| format!("opening {}: {e}", p.display()))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(&cert_path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key = rustls_pemfile::private_key(&mut open(&key_path)?)
        .map_err(|e| format!("reading {}: {e}", key_path.display()))?
        .ok_or_else(|| format!("no private key in {}", key_path.display()))?;
    Ok(Loaded {
        certs,
        key,
        fingerprint,
        cert_path,
        key_path,
        generated,
    })
}

/// SHA-256 of DER bytes as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    names: Vec<String>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    // Each file is written whole beside its place (a new 0600 file), then
    // renamed over it: a crash leaves the old pair or the new one, and an
    // old key file's looser mode is not inherited.
    let replace = |path: &Path, data: &[u8]| -> Result<(), String> {
        let tmp = path.with_extension("pem.new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, data)?;
        std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    replace(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    replace(cert_path, certified.cert.pem().as_bytes())
}

/// Writes a secret readable by the owner only (created 0600, never world-readable).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_made_again_only_when_its_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["cloud.example.com".to_string()];
        let a = load_or_generate_for(dir.path(), None, None, "t", &names).unwrap();
        assert!(a.generated);
        let b = load_or_generate_for(dir.path(), None, None, "t", &names).unwrap();
        assert!(!b.generated);
        assert_eq!(a.fingerprint, b.fingerprint);
        let two = ["b.example".to_string(), "a.example".to_string()];
        let x = load_or_generate_for(dir.path(), None, None, "t", &two).unwrap();
        assert!(x.generated);
        let swapped = [two[1].clone(), two[0].clone(), two[0].clone()];
        let y = load_or_generate_for(dir.path(), None, None, "t", &swapped).unwrap();
        assert!(!y.generated, "the same names in another order keep the key");
        let c =
            load_or_generate_for(dir.path(), None, None, "t", &["10.0.0.5".to_string()]).unwrap();
        assert!(c.generated);
        assert_ne!(b.fingerprint, c.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Without extra names, an older generated certificate (no record of
        // its names) is kept.
        let plain = tempfile::tempdir().unwrap();
        let d = load_or_generate(plain.path(), None, None, "t").unwrap();
        std::fs::remove_file(plain.path().join("names.txt")).unwrap();
        let e = load_or_generate(plain.path(), None, None, "t").unwrap();
        assert_eq!((e.generated, e.fingerprint), (false, d.fingerprint));
    }
}
