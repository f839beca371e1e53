//! The recorder's cloud identity on disk: its key and its pairing, owner-only
//! files under `<storage>/cloud/`.

use super::Paired;
use candor_link::identity::Identity;
use std::path::PathBuf;

/// Where the key and the pairing live.
pub(super) struct Files {
    pub(super) key: PathBuf,
    paired: PathBuf,
}

impl Files {
    pub(super) fn new(storage: &std::path::Path) -> Files {
        let dir = storage.join("cloud");
        Files {
            key: dir.join("key"),
            paired: dir.join("paired.json"),
        }
    }

    /// The recorder's key, generated on first use. Nothing derives from a
    /// serial number or a MAC: a new key is a new identity.
    pub(super) fn identity(&self) -> Result<Identity, String> {
        if let Ok(k) = std::fs::read(&self.key) {
            return Identity::from_pkcs8(&k).map_err(|e| e.to_string());
        }
        let k = Identity::generate().map_err(|e| e.to_string())?;
        if let Some(d) = self.key.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        write_private(&self.key, &k)?;
        Identity::from_pkcs8(&k).map_err(|e| e.to_string())
    }

    pub(super) fn paired(&self) -> Option<Paired> {
        serde_json::from_slice(&std::fs::read(&self.paired).ok()?).ok()
    }

    pub(super) fn save_paired(&self, p: &Paired) -> Result<(), String> {
        let tmp = self.paired.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(p).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, &self.paired))
            .map_err(|e| format!("saving {}: {e}", self.paired.display()))
    }

    /// Final: the key goes too, so pairing again makes a new identity.
    pub(super) fn forget(&self) {
        let _ = std::fs::remove_file(&self.paired);
        let _ = std::fs::remove_file(&self.key);
        // The remote name's keys and certificates go with the pairing: a
        // new pairing gets a new name.
        if let Some(storage) = self.key.parent().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir_all(storage.join("tls/remote"));
        }
    }
}

pub(super) fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            // `mode` applies only to a file made now.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(data)
        })
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
