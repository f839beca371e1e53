//! Versions of `candor.toml`. Every change made through
//! [`crate::config_edit`] is stored whole, with who made it, when and from
//! where (this network, remote access, a technician's grant, a hand edit
//! noticed at start, an automatic revert). Any two versions can be diffed
//! and any version restored (docs/design/installers.md).
//!
//! The history sits beside the config file (`candor.toml` →
//! `candor.history.db`, 0600): it holds the same secrets as the file. What
//! leaves this module for display is redacted ([`History::redact`]):
//! each secret (a password, a webhook secret, a URL's password) becomes
//! `<secret:XXXXXXXX>`, a keyed hash whose key never leaves the database,
//! so a diff shows *that* a password changed without showing it, and an
//! edited redacted text gets its secrets back ([`History::restore`]).
//!
//! Limits: the newest [`MAX_VERSIONS`] versions are kept; a config text is
//! at most [`MAX_TEXT`] bytes.

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Value};

/// Versions kept; older ones are dropped as new ones arrive.
pub const MAX_VERSIONS: i64 = 1000;
/// The largest config text stored or accepted from the web app.
pub const MAX_TEXT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("config history {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("config history {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no config version {0}")]
    NoVersion(i64),
}

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The web app or API on this network.
    Local,
    /// The web app through the cloud's relay (remote access).
    Remote,
    /// A technician, within an owner's grant.
    Technician,
    /// The file changed outside Candor (a hand edit), noticed at start.
    File,
    /// A command on this machine (`candor demo`, `candor config`).
    Cli,
    /// The recorder itself: a change not confirmed in time was reverted.
    System,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Remote => "remote",
            Origin::Technician => "technician",
            Origin::File => "file",
            Origin::Cli => "cli",
            Origin::System => "system",
        }
    }

    fn parse(s: &str) -> Origin {
        match s {
            "local" => Origin::Local,
            "remote" => Origin::Remote,
            "technician" => Origin::Technician,
            "cli" => Origin::Cli,
            "system" => Origin::System,
            _ => Origin::File,
        }
    }
}

/// Who made a change, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub user: Option<String>,
    pub origin: Origin,
    /// The client's address, when it came over the network.
    pub address: Option<String>,
}

impl Author {
    pub fn new(user: &str, origin: Origin, address: Option<String>) -> Author {
        Author {
            user: Some(user.to_owned()),
            origin,
            address,
        }
    }

    pub fn file() -> Author {
        Author {
            user: None,
            origin: Origin::File,
            address: None,
        }
    }

    pub fn cli() -> Author {
        Author {
            user: None,
            origin: Origin::Cli,
            address: None,
        }
    }

    pub fn system() -> Author {
        Author {
            user: None,
            origin: Origin::System,
            address: None,
        }
    }
}

/// One version, without its text.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub user: Option<String>,
    pub origin: Origin,
    pub address: Option<String>,
    /// What changed, in words ("motion settings of yard").
    pub note: String,
}

/// A change that reverts by itself unless confirmed by `deadline` (unix
/// seconds): `version` is the change, `previous` what it goes back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub version: i64,
    pub previous: i64,
    pub deadline: i64,
}

pub struct History {
    conn: Connection,
    path: PathBuf,
    /// Keys the secrets' fingerprints; stays in the database.
    key: Vec<u8>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl History {
    /// The history of the config file at `config`.
    pub fn path_for(config: &Path) -> PathBuf {
        let stem = config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "candor".into());
        config.with_file_name(format!("{stem}.history.db"))
    }

    pub fn open(config: &Path) -> Result<History, HistoryError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path_for(config);
        let io = |source| HistoryError::Io {
            path: path.clone(),
            source,
        };
        // Owner-only before SQLite opens it: it holds the config's secrets.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let db = |source| HistoryError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS version (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at INTEGER NOT NULL,
                 user TEXT,
                 origin TEXT NOT NULL,
                 address TEXT,
                 note TEXT NOT NULL,
                 text TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS pending (
                 one INTEGER PRIMARY KEY CHECK (one = 1),
                 version INTEGER NOT NULL,
                 previous INTEGER NOT NULL,
                 deadline INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS secret_key (
                 one INTEGER PRIMARY KEY CHECK (one = 1),
                 key BLOB NOT NULL);",
        )
        .map_err(db)?;
        let key: Option<Vec<u8>> = conn
            .query_row("SELECT key FROM secret_key", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        let key = match key {
            Some(k) => k,
            None => {
                let k: [u8; 32] = rand::random();
                conn.execute(
                    "INSERT OR IGNORE INTO secret_key (one, key) VALUES (1, ?1)",
                    params![k.to_vec()],
                )
                .map_err(db)?;
                conn.query_row("SELECT key FROM secret_key", [], |r| r.get(0))
                    .map_err(db)?
            }
        };
        Ok(History { conn, path, key })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The newest version: its id and text.
    pub fn latest(&self) -> Result<Option<(i64, String)>, HistoryError> {
        self.conn
            .query_row(
                "SELECT id, text FROM version ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.db())
    }

    /// Stores `text` as a new version, unless it is the newest already.
    /// Returns the version's id either way.
    pub fn record(&self, text: &str, by: &Author, note: &str) -> Result<i64, HistoryError> {
        if let Some((id, t)) = self.latest()?
            && t == text
        {
            return Ok(id);
        }
        self.conn
            .execute(
                "INSERT INTO version (at, user, origin, address, note, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now(), by.user, by.origin.as_str(), by.address, note, text],
            )
            .map_err(self.db())?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .execute(
                "DELETE FROM version WHERE id <= ?1 - ?2",
                params![id, MAX_VERSIONS],
            )
            .map_err(self.db())?;
        Ok(id)
    }

    /// Records the file's text if it is not the newest version: the first
    /// version, or a change made outside Candor (by hand, by a deployment
    /// tool). Returns the new version's id when there was one.
    pub fn notice(&self, text: &str) -> Result<Option<i64>, HistoryError> {
        let first = match self.latest()? {
            Some((_, t)) if t == text => return Ok(None),
            Some(_) => false,
            None => true,
        };
        let note = if first {
            "first version seen"
        } else {
            "changed outside Candor (by hand)"
        };
        self.record(text, &Author::file(), note).map(Some)
    }

    /// Versions, newest first, at most `limit` of them, older than `before` when given.
    pub fn list(&self, limit: u32, before: Option<i64>) -> Result<Vec<VersionInfo>, HistoryError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, at, user, origin, address, note FROM version
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
                Ok(VersionInfo {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    user: r.get(2)?,
                    origin: Origin::parse(&r.get::<_, String>(3)?),
                    address: r.get(4)?,
                    note: r.get(5)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// One version's text, as stored (with its secrets).
    pub fn text(&self, id: i64) -> Result<String, HistoryError> {
        self.conn
            .query_row("SELECT text FROM version WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(self.db())?
            .ok_or(HistoryError::NoVersion(id))
    }

    /// A unified diff from version `from` to version `to`, secrets redacted.
    pub fn diff(&self, from: i64, to: i64) -> Result<String, HistoryError> {
        let (a, b) = (self.text(from)?, self.text(to)?);
        Ok(self.diff_texts(&a, &b, &format!("version {from}"), &format!("version {to}")))
    }

    /// A unified diff between two config texts, secrets redacted.
    pub fn diff_texts(&self, a: &str, b: &str, a_name: &str, b_name: &str) -> String {
        let (a, b) = (self.redact(a), self.redact(b));
        similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(a_name, b_name)
            .to_string()
    }

    fn fingerprint(&self, secret: &str) -> String {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(secret.as_bytes());
        let d = m.finalize().into_bytes();
        format!("<secret:{}>", hex::encode(&d[..4]))
    }

    /// `text` with every secret replaced by its fingerprint. Text that is
    /// not valid TOML is shown as a notice, never raw: a broken hand edit
    /// may hold a password anywhere.
    pub fn redact(&self, text: &str) -> String {
        let Ok(mut doc) = text.parse::<DocumentMut>() else {
            return "# (this version is not valid TOML; it is not shown, as it may hold secrets)\n"
                .into();
        };
        walk_strings(doc.as_item_mut(), None, &mut |key, s| {
            secret_parts(key, s)
                .map(|(pre, secret, post)| format!("{pre}{}{post}", self.fingerprint(secret)))
        });
        doc.to_string()
    }

    /// Puts the secrets of `current` (a config text) back into `edited`, a
    /// redacted text a user changed: each `<secret:…>` that is the
    /// fingerprint of one of `current`'s secrets (or of any stored version's)
    /// becomes that secret again. A fingerprint that matches nothing is an
    /// error: the user typed or pasted one that means nothing here.
    ///
    /// A URL's password goes back only into a URL to the same host and
    /// port: a mark moved to another address (a technician pointing a
    /// camera at a host of theirs) is refused, so the password is never
    /// sent anywhere it was not typed for.
    pub fn restore(&self, edited: &str, current: &str) -> Result<String, String> {
        // fingerprint → (secret, the host:port it belongs to, for URL passwords)
        let mut known = std::collections::HashMap::new();
        let mut add = |text: &str| {
            if let Ok(mut doc) = text.parse::<DocumentMut>() {
                walk_strings(doc.as_item_mut(), None, &mut |key, s| {
                    if let Some((_, secret, post)) = secret_parts(key, s) {
                        let host = post.strip_prefix('@').map(|_| url_host(s).to_owned());
                        known
                            .entry(self.fingerprint(secret))
                            .or_insert_with(|| (secret.to_owned(), host));
                    }
                    None
                });
            }
        };
        add(current);
        if let Ok(versions) = self.list(50, None) {
            for v in versions {
                if let Ok(t) = self.text(v.id) {
                    add(&t);
                }
            }
        }
        let mut doc: DocumentMut = edited.parse().map_err(|e| format!("{e}"))?;
        let mut refused = None;
        walk_strings(doc.as_item_mut(), None, &mut |_, s| {
            if !s.contains("<secret:") {
                return None;
            }
            let mut out = String::new();
            let mut rest = s;
            while let Some(i) = rest.find("<secret:") {
                out.push_str(&rest[..i]);
                let tail = &rest[i..];
                let end = tail.find('>').map_or(tail.len(), |e| e + 1);
                let mark = &tail[..end];
                match known.get(mark) {
                    Some((_, Some(host))) if host != url_host(s) => {
                        refused = Some(format!(
                            "the password {mark} belongs to {host}, not {}; type it again to send it there",
                            url_host(s)
                        ));
                        out.push_str(mark);
                    }
                    Some((secret, _)) => out.push_str(secret),
                    None => {
                        refused = Some(format!(
                            "{mark} is not a secret this config had; type the new value in place of it"
                        ));
                        out.push_str(mark);
                    }
                }
                rest = &tail[end..];
            }
            out.push_str(rest);
            Some(out)
        });
        if let Some(why) = refused {
            return Err(why);
        }
        Ok(doc.to_string())
    }

    /// The change waiting for confirmation, if any.
    pub fn pending(&self) -> Result<Option<Pending>, HistoryError> {
        self.conn
            .query_row("SELECT version, previous, deadline FROM pending", [], |r| {
                Ok(Pending {
                    version: r.get(0)?,
                    previous: r.get(1)?,
                    deadline: r.get(2)?,
                })
            })
            .optional()
            .map_err(self.db())
    }

    pub fn set_pending(&self, p: Pending) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO pending (one, version, previous, deadline)
                 VALUES (1, ?1, ?2, ?3)",
                params![p.version, p.previous, p.deadline],
            )
            .map(drop)
            .map_err(self.db())
    }

    /// Ends the wait (confirmed, or reverted). True if there was one.
    pub fn clear_pending(&self) -> Result<bool, HistoryError> {
        self.conn
            .execute("DELETE FROM pending", [])
            .map(|n| n > 0)
            .map_err(self.db())
    }
}

/// Key names whose string values are secrets, wherever they appear.
const SECRET_KEYS: &[&str] = &["password", "secret", "token", "pairing_code"];

/// Splits a config string value into (before, secret, after) when it holds
/// a secret: the whole value under a secret key, or the password of a URL
/// (`scheme://user:PASSWORD@host/…`).
fn secret_parts<'a>(key: Option<&str>, s: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
    if s.is_empty() {
        return None;
    }
    if key.is_some_and(|k| SECRET_KEYS.contains(&k)) {
        return Some(("", s, ""));
    }
    let scheme_end = s.find("://")? + 3;
    let authority_end = s[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| scheme_end + i);
    let at = s[scheme_end..authority_end].rfind('@')? + scheme_end;
    let colon = s[scheme_end..at].find(':')? + scheme_end;
    (colon + 1 < at).then(|| (&s[..colon + 1], &s[colon + 1..at], &s[at..]))
}

/// The `host:port` of a URL (after any userinfo), or `""`.
fn url_host(s: &str) -> &str {
    let Some(i) = s.find("://") else { return "" };
    let rest = &s[i + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rsplit('@').next().unwrap_or("")
}

/// Calls `f` on every string value (with its key, for values in tables),
/// replacing the value when `f` returns a new one. Decor (comments) is kept.
fn walk_strings(
    item: &mut Item,
    key: Option<&str>,
    f: &mut dyn FnMut(Option<&str>, &str) -> Option<String>,
) {
    match item {
        Item::Table(t) => {
            for (k, v) in t.iter_mut() {
                let k = k.get().to_owned();
                walk_strings(v, Some(&k), f);
            }
        }
        Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                for (k, v) in t.iter_mut() {
                    let k = k.get().to_owned();
                    walk_strings(v, Some(&k), f);
                }
            }
        }
        Item::Value(v) => walk_value(v, key, f),
        Item::None => {}
    }
}

fn walk_value(
    v: &mut Value,
    key: Option<&str>,
    f: &mut dyn FnMut(Option<&str>, &str) -> Option<String>,
) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(key, s.value()) {
                let decor = s.decor().clone();
                let mut n = toml_edit::Formatted::new(new);
                *n.decor_mut() = decor;
                *s = n;
            }
        }
        Value::Array(a) => {
            for v in a.iter_mut() {
                walk_value(v, key, f);
            }
        }
        Value::InlineTable(t) => {
            for (k, v) in t.iter_mut() {
                let k = k.get().to_owned();
                walk_value(v, Some(&k), f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "# site\n[storage]\npath = \"d\"\n\n[[cameras]]\nname = \"gate\" # front\nurl = \"rtsp://admin:hunter2%40x@10.0.0.5/main\"\n\n[mqtt]\nurl = \"mqtt://h:1883\"\nusername = \"u\"\npassword = \"mq-pass\"\n\n[[webhooks]]\nurl = \"https://h/x\"\nsecret = \"0123456789abcdef-secret\"\n";

    fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("candor.toml")).unwrap();
        (dir, h)
    }

    #[test]
    fn secrets_never_show_and_come_back() {
        let (_d, h) = history();
        let r = h.redact(CFG);
        for s in ["hunter2", "mq-pass", "0123456789abcdef-secret"] {
            assert!(!r.contains(s), "{s} shown: {r}");
        }
        assert!(
            r.contains("rtsp://admin:<secret:") && r.contains("# front"),
            "{r}"
        );
        // The redacted text, edited elsewhere, gets its secrets back.
        let edited = r.replace("/main", "/sub");
        let back = h.restore(&edited, CFG).unwrap();
        assert_eq!(back, CFG.replace("/main", "/sub"));
        // A password does not follow its URL to another host.
        let moved = r.replace("10.0.0.5/main", "203.0.113.9/main");
        let e = h.restore(&moved, CFG).unwrap_err();
        assert!(e.contains("belongs to 10.0.0.5"), "{e}");
        // A made-up fingerprint is refused, not written as a password.
        let bogus = r.replace("password = \"<secret:", "password = \"<secret:00");
        assert!(h.restore(&bogus, CFG).is_err());
        // Another install's fingerprints differ (keyed), so they can't be
        // looked up in a table of common passwords' hashes.
        let (_d2, h2) = history();
        assert_ne!(h2.redact(CFG), r);
    }

    #[test]
    fn url_secrets_are_found_only_in_the_userinfo() {
        assert_eq!(
            secret_parts(Some("url"), "rtsp://u:p@h/x@y"),
            Some(("rtsp://u:", "p", "@h/x@y"))
        );
        assert_eq!(secret_parts(Some("url"), "rtsp://u@h/x"), None);
        assert_eq!(secret_parts(Some("url"), "rtsp://h/a:b@c"), None);
        assert_eq!(secret_parts(Some("name"), "plain"), None);
        assert_eq!(secret_parts(Some("password"), "x"), Some(("", "x", "")));
    }

    #[test]
    fn versions_diff_and_stay_bounded() {
        let (_d, h) = history();
        assert_eq!(h.notice(CFG).unwrap(), Some(1));
        assert_eq!(h.notice(CFG).unwrap(), None, "unchanged: no new version");
        let b = CFG
            .replace("hunter2%40x", "n3w")
            .replace("\"gate\"", "\"door\"");
        let by = Author::new("ann", Origin::Remote, Some("203.0.113.7".into()));
        let v2 = h.record(&b, &by, "camera door").unwrap();
        let d = h.diff(1, v2).unwrap();
        assert!(
            d.contains("-name = \"gate\"") && d.contains("+name = \"door\""),
            "{d}"
        );
        assert!(!d.contains("n3w") && !d.contains("hunter2"), "{d}");
        let list = h.list(10, None).unwrap();
        assert_eq!(list[0].user.as_deref(), Some("ann"));
        assert_eq!(list[0].origin, Origin::Remote);
        assert_eq!(list[1].origin, Origin::File);
        assert!(matches!(h.diff(1, 99), Err(HistoryError::NoVersion(99))));
        for i in 0..(MAX_VERSIONS + 5) {
            h.record(&format!("{CFG}# {i}\n"), &by, "n").unwrap();
        }
        let n: i64 = h
            .conn
            .query_row("SELECT COUNT(*) FROM version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MAX_VERSIONS);
    }

    #[test]
    fn broken_text_is_never_shown() {
        let (_d, h) = history();
        let r = h.redact("password = \"x\n[[broken");
        assert!(!r.contains("password"), "{r}");
    }
}
