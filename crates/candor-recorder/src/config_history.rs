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
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size = -256;
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
                "DELETE FROM version WHERE id <= ?1 - ?2 \
                 AND id NOT IN (SELECT version FROM pending UNION SELECT previous FROM pending)",
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
        // Myers' worst case is quadratic: bounded, the diff is then coarser.
        similar::TextDiff::configure()
            .timeout(std::time::Duration::from_millis(500))
            .diff_lines(&a, &b)
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

    /// `text` with every secret replaced by its fingerprint, and comments
    /// that may hold one hidden. Text that is not valid TOML is shown as a
    /// notice, never raw: a broken hand edit may hold a password anywhere.
    pub fn redact(&self, text: &str) -> String {
        let Ok(mut doc) = text.parse::<DocumentMut>() else {
            return "# (this version is not valid TOML; it is not shown, as it may hold secrets)\n"
                .into();
        };
        walk(doc.as_item_mut(), &Place::root(), &mut |place, s| {
            secret_at(place, s)
                .map(|(pre, secret, post, _)| format!("{pre}{}{post}", self.fingerprint(secret)))
        });
        hide_comments(&doc.to_string()).0
    }

    /// `message` (an error about `text`) with `text`'s secrets replaced by
    /// their fingerprints: a validation error may quote a value.
    pub fn scrub(&self, message: &str, text: &str) -> String {
        let mut out = message.to_owned();
        if let Ok(mut doc) = text.parse::<DocumentMut>() {
            walk(doc.as_item_mut(), &Place::root(), &mut |place, s| {
                if let Some((_, secret, _, _)) = secret_at(place, s)
                    && secret.len() >= 3
                {
                    out = out.replace(secret, &self.fingerprint(secret));
                }
                None
            });
        }
        out
    }

    /// Puts the secrets of `current` (a config text) back into `edited`, a
    /// redacted text a user changed. A `<secret:…>` mark goes back only
    /// where such a secret was: the whole value of the same key (a
    /// password beside the same server address), or the password of a URL
    /// under the same key with the same scheme, host and port. So a mark
    /// can't be moved into a field that isn't redacted (to be read back) or
    /// to another address (to be sent there): it must be typed again. The
    /// secrets of the last 50 versions count, for rollbacks edited by hand.
    /// Hidden comments come back by their number.
    pub fn restore(&self, edited: &str, current: &str) -> Result<String, String> {
        let mut known: std::collections::HashMap<String, Vec<(String, String)>> =
            Default::default();
        let mut add = |text: &str| {
            if let Ok(mut doc) = text.parse::<DocumentMut>() {
                walk(doc.as_item_mut(), &Place::root(), &mut |place, s| {
                    if let Some((_, secret, _, binding)) = secret_at(place, s) {
                        let e = known.entry(self.fingerprint(secret)).or_default();
                        if !e.iter().any(|(_, b)| *b == binding) {
                            e.push((secret.to_owned(), binding));
                        }
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
        let edited = restore_comments(edited, &hide_comments(current).1)?;
        let mut doc: DocumentMut = edited.parse().map_err(|e| format!("{e}"))?;
        // Two passes: URLs (and whole-value URLs) first, then the passwords
        // beside them, which are bound to those URLs as restored.
        for keyed in [false, true] {
            walk(doc.as_item_mut(), &Place::root(), &mut |place, s| {
                let is_keyed = place
                    .key
                    .as_deref()
                    .is_some_and(|k| SECRET_KEYS.contains(&k));
                if is_keyed != keyed || !s.contains("<secret:") {
                    return None;
                }
                secret_at(place, s).and_then(|(pre, mark, post, binding)| {
                    let (secret, _) = known.get(mark)?.iter().find(|(_, b)| *b == binding)?;
                    Some(format!("{pre}{secret}{post}"))
                })
            });
        }
        let mut refused = None;
        walk(doc.as_item_mut(), &Place::root(), &mut |place, s| {
            if s.contains("<secret:") && refused.is_none() {
                refused = Some(format!(
                    "{}: a <secret:…> mark stays only where its secret was (the same setting, \
                     for the same address); type the value itself here",
                    place.path
                ));
            }
            None
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
/// Values that are secrets whole: a webhook's URL is often a capability
/// (Slack, Discord and Home Assistant put the token in the path).
const SECRET_PATHS: &[&str] = &["webhooks.url"];

/// Where a string value sits: its dotted path (array indexes dropped:
/// `cameras.url`), its key, and the `url` beside it in its table (a
/// password belongs to that server).
#[derive(Clone, Debug)]
struct Place {
    path: String,
    key: Option<String>,
    sibling_url: String,
}

impl Place {
    fn root() -> Place {
        Place {
            path: String::new(),
            key: None,
            sibling_url: String::new(),
        }
    }

    fn child(&self, key: &str, sibling_url: &str) -> Place {
        Place {
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
            key: Some(key.to_owned()),
            sibling_url: sibling_url.to_owned(),
        }
    }
}

/// Splits a config string value into (before, secret, after, binding) when
/// it holds a secret: the whole value under a secret key or path, or the
/// password of a URL (`scheme://user:PASSWORD@host/…`). The binding says
/// where the secret may go back: the place, and the server it is for.
fn secret_at<'a>(place: &Place, s: &'a str) -> Option<(&'a str, &'a str, &'a str, String)> {
    if s.is_empty() {
        return None;
    }
    if SECRET_PATHS.contains(&place.path.as_str()) {
        return Some(("", s, "", place.path.clone()));
    }
    if place
        .key
        .as_deref()
        .is_some_and(|k| SECRET_KEYS.contains(&k))
    {
        let server = url_server(&place.sibling_url);
        return Some(("", s, "", format!("{} {server}", place.path)));
    }
    let scheme_end = s.find("://")? + 3;
    let authority_end = s[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| scheme_end + i);
    let at = s[scheme_end..authority_end].rfind('@')? + scheme_end;
    let colon = s[scheme_end..at].find(':')? + scheme_end;
    (colon + 1 < at).then(|| {
        (
            &s[..colon + 1],
            &s[colon + 1..at],
            &s[at..],
            format!("{} {}", place.path, url_server(s)),
        )
    })
}

/// `scheme://host:port` of a URL (after any userinfo), or `""`.
fn url_server(s: &str) -> String {
    let Some(i) = s.find("://") else {
        return String::new();
    };
    let rest = &s[i + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or("");
    format!(
        "{}://{}",
        s[..i].to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// Calls `f` on every string value with its place, replacing the value
/// when `f` returns a new one. Decor (comments) is kept.
fn walk(item: &mut Item, place: &Place, f: &mut dyn FnMut(&Place, &str) -> Option<String>) {
    let url_of =
        |t: &toml_edit::Table| t.get("url").and_then(Item::as_str).unwrap_or("").to_owned();
    match item {
        Item::Table(t) => {
            let sib = url_of(t);
            for (k, v) in t.iter_mut() {
                let k = k.get().to_owned();
                walk(v, &place.child(&k, &sib), f);
            }
        }
        Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                let sib = url_of(t);
                for (k, v) in t.iter_mut() {
                    let k = k.get().to_owned();
                    walk(v, &place.child(&k, &sib), f);
                }
            }
        }
        Item::Value(v) => walk_value(v, place, f),
        Item::None => {}
    }
}

fn walk_value(v: &mut Value, place: &Place, f: &mut dyn FnMut(&Place, &str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(place, s.value()) {
                let decor = s.decor().clone();
                let mut n = toml_edit::Formatted::new(new);
                *n.decor_mut() = decor;
                *s = n;
            }
        }
        Value::Array(a) => {
            for v in a.iter_mut() {
                walk_value(v, place, f);
            }
        }
        Value::InlineTable(t) => {
            let sib = t
                .get("url")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            for (k, v) in t.iter_mut() {
                let k = k.get().to_owned();
                walk_value(v, &place.child(&k, &sib), f);
            }
        }
        _ => {}
    }
}

/// Where a line's comment starts (a `#` outside any string), if it has one.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return Some(i),
            None => {}
        }
    }
    None
}

/// Whether a comment may hold a secret (a commented-out password, a URL
/// with credentials or a token).
fn sensitive(comment: &str) -> bool {
    let c = comment.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| c.contains(k))
        || (c.contains("://") && c.contains('@'))
        || c.contains("hooks.")
}

/// `text` with comments that may hold a secret replaced by
/// `# <comment N hidden>`, and those comments in order.
fn hide_comments(text: &str) -> (String, Vec<String>) {
    let mut hidden = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match comment_start(body) {
            Some(i) if sensitive(&body[i..]) => {
                out.push_str(&body[..i]);
                out.push_str(&format!("# <comment {} hidden>", hidden.len() + 1));
                hidden.push(body[i..].to_owned());
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    (out, hidden)
}

/// Puts hidden comments back by their number.
fn restore_comments(edited: &str, hidden: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(edited.len());
    let mut rest = edited;
    while let Some(i) = rest.find("# <comment ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let n = tail["# <comment ".len()..]
            .split_once(" hidden>")
            .and_then(|(n, _)| n.parse::<usize>().ok());
        match n.and_then(|n| hidden.get(n.wrapping_sub(1)).map(|h| (n, h))) {
            Some((n, h)) => {
                out.push_str(h);
                rest = &tail[format!("# <comment {n} hidden>").len()..];
            }
            None => {
                return Err(
                    "a hidden comment's mark was changed; leave those marks as they are".into(),
                );
            }
        }
    }
    out.push_str(rest);
    Ok(out)
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
        assert!(
            e.starts_with("cameras.url: a <secret:…> mark stays only where"),
            "{e}"
        );
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
        let at = |key: &str, v: &'static str| {
            let p = Place::root().child("cameras", "").child(key, "");
            secret_at(&p, v)
        };
        assert_eq!(
            at("url", "rtsp://u:p@h/x@y"),
            Some(("rtsp://u:", "p", "@h/x@y", "cameras.url rtsp://h".into()))
        );
        assert_eq!(at("url", "rtsp://u@h/x"), None);
        assert_eq!(at("url", "rtsp://h/a:b@c"), None);
        assert_eq!(at("name", "plain"), None);
        assert!(at("password", "x").is_some());
    }

    /// The attacks of an outside review: a mark moved where it would be
    /// shown (another field, an error message) or sent (another server).
    #[test]
    fn a_mark_goes_back_only_where_its_secret_was() {
        let (_d, h) = history();
        let r = h.redact(CFG);
        let cam_mark = r
            .split("rtsp://admin:")
            .nth(1)
            .and_then(|t| t.split('@').next())
            .unwrap()
            .to_owned();
        let mqtt_mark = r
            .split("password = \"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap()
            .to_owned();
        let hostile = [
            // Into a field that is not redacted.
            r.replace("name = \"gate\"", &format!("name = \"{cam_mark}\"")),
            r.replace("name = \"gate\"", &format!("name = \"x://10.0.0.5/{cam_mark}\"")),
            format!("{r}\n[objects]\nruntime = \"{mqtt_mark}\"\n"),
            // The camera's password into another URL at its own host, but another key.
            r.replace(
                "[[webhooks]]",
                &format!("[[cameras]]\nname = \"x\"\nurl = \"rtsp://10.0.0.5/\"\nonvif = \"http://u:{cam_mark}@10.0.0.5/\"\n\n[[webhooks]]"),
            ),
            // The MQTT password to another broker, or into a camera URL.
            r.replace("mqtt://h:1883", "mqtt://evil.example:1883"),
            r.replace("rtsp://admin:".to_owned().as_str(), "rtsp://admin:x").replace(&format!("x{cam_mark}"), &mqtt_mark),
        ];
        for (i, e) in hostile.iter().enumerate() {
            assert!(h.restore(e, CFG).is_err(), "attack {i} restored:\n{e}");
        }
        // Where it was, it comes back.
        assert_eq!(h.restore(&r, CFG).unwrap(), CFG);
        // An error quoting a value shows the mark, not the secret.
        assert_eq!(
            h.scrub("bad value \"mq-pass\" at line 3", CFG),
            format!("bad value \"{mqtt_mark}\" at line 3")
        );
    }

    #[test]
    fn comments_that_may_hold_secrets_are_hidden_and_kept() {
        let (_d, h) = history();
        let cfg = format!("{CFG}# old: password = \"hunter2\"\n# rtsp://a:b@c/x\n# plain note\n");
        let r = h.redact(&cfg);
        assert!(!r.contains("hunter2") && !r.contains("a:b@c"), "{r}");
        assert!(
            r.contains("# <comment 1 hidden>") && r.contains("# plain note"),
            "{r}"
        );
        assert_eq!(
            h.restore(&r, &cfg).unwrap(),
            cfg,
            "saving the editor's text keeps them"
        );
        assert!(
            h.restore(&r.replace("comment 2 hidden", "comment 9 hidden"), &cfg)
                .is_err()
        );
        // A webhook URL is a capability: hidden whole.
        assert!(!r.contains("https://h/x"), "{r}");
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
