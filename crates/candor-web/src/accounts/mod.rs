//! User accounts and first-run setup, in `<storage.path>/accounts.db`.
//!
//! Kept apart from the footage index: different lifetime, different readers
//! (the CLI's `spans`/`export` never need it) and owner-only permissions.
//! Passwords are argon2id (the `argon2` crate's defaults: OWASP's 19 MiB,
//! t=2, p=1). There is no default password: the first admin is created with a
//! one-time setup token printed on the console, or with `candor user add`.

mod schema;
pub use schema::SCHEMA_VERSION;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

pub const MIN_PASSWORD_LEN: usize = 10;
/// Audit entries are kept this long (400 days: a year and a margin)...
pub const AUDIT_KEEP_SECS: i64 = 400 * 24 * 3600;
/// ...and at most this many (about 200 MB at most).
pub const AUDIT_MAX_ROWS: i64 = 1_000_000;
/// Retention runs once per this many entries, and at every start.
pub const AUDIT_PRUNE_EVERY: i64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    /// Viewer < operator < admin: each role may do what the ones below it may.
    pub fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Operator => 1,
            Role::Admin => 2,
        }
    }
    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user name must be 1-64 characters of letters, digits, '.', '_' or '-'")]
    BadName,
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error(
        "the setup token is wrong, used or expired; restart the recorder for a new one, or use `candor user add`"
    )]
    BadToken,
    #[error("setup is closed: an admin already exists")]
    SetupClosed,
    #[error("accounts database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("accounts database: {0}")]
    Io(#[from] std::io::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no user {0:?}")]
    NoUser(String),
    #[error("{0:?} is a technician: their access comes from grants only (Access page)")]
    Technician(String),
    #[error("the last admin cannot be removed or demoted; make another admin first")]
    LastAdmin,
    #[error("the code is wrong or was already used")]
    BadCode,
    #[error("two-factor authentication is not being set up; start again")]
    NoPendingTotp,
    #[error("camera list: {0}")]
    BadCameras(String),
    #[error("at most {1} {0} at once; revoke some first")]
    TooMany(&'static str, usize),
    #[error(
        "accounts.db is from a newer Candor (schema version {0}); run that version, or restore a backup"
    )]
    SchemaVersion(i64),
}

pub struct Accounts {
    conn: Mutex<Connection>,
}

use candor_media::time::unix_secs as now_secs;

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

impl Accounts {
    pub fn open(data_dir: &Path) -> Result<Accounts, AccountError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("accounts.db");
        // Create it owner-only before SQLite opens it.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // A small file; a stated, bounded page cache (issue 17).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size = -256;",
        )?;
        schema::migrate(&conn)?;
        conn.execute_batch("PRAGMA foreign_keys=ON;")?;
        Self::prune_audit(&conn)?;
        Ok(Accounts {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn user_count(&self) -> Result<u64, AccountError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM user", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn hash_password(password: &str) -> Result<String, AccountError> {
        candor_auth::hash_password(password).map_err(AccountError::Hash)
    }

    fn insert(
        conn: &Connection,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<(), AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName);
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AccountError::WeakPassword);
        }
        let hash = Self::hash_password(password)?;
        match conn.execute(
            "INSERT INTO user (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), hash, now_secs()],
        ) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(AccountError::Exists(name.to_owned()))
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<(), AccountError> {
        Self::insert(&self.conn(), name, role, password)
    }

    /// Checks a password. Unknown users cost the same argon2 work as known ones,
    /// so timing does not reveal which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<Role>, AccountError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT role, password_hash FROM user WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let dummy;
        let hash = match &row {
            Some((_, h)) => h.as_str(),
            None => {
                dummy = Self::hash_password("candor-dummy-password")?;
                dummy.as_str()
            }
        };
        let parsed = PasswordHash::new(hash).map_err(|e| AccountError::Hash(e.to_string()))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(match (ok, row) {
            (true, Some((role, _))) => Role::parse(&role),
            _ => None,
        })
    }

    /// A fresh one-time setup token (replacing any earlier one), valid for
    /// `ttl_secs`, or `None` when an admin already exists. Only its hash is stored.
    pub fn new_setup_token(&self, ttl_secs: i64) -> Result<Option<String>, AccountError> {
        if self.user_count()? > 0 {
            return Ok(None);
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let conn = self.conn();
        conn.execute("DELETE FROM setup_token", [])?;
        conn.execute(
            "INSERT INTO setup_token (hash, expires_at) VALUES (?1, ?2)",
            params![token_hash(&token), now_secs() + ttl_secs],
        )?;
        Ok(Some(token))
    }

    /// Whether `token` is the current, unexpired setup token and no user
    /// exists yet (a cheap check before any password is hashed).
    pub fn setup_token_valid(&self, token: &str) -> Result<bool, AccountError> {
        let conn = self.conn();
        let users: i64 = conn.query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0))?;
        let valid: i64 = conn.query_row(
            "SELECT COUNT(*) FROM setup_token WHERE hash = ?1 AND expires_at > ?2",
            params![token_hash(token), now_secs()],
            |r| r.get(0),
        )?;
        Ok(users == 0 && valid > 0)
    }

    /// Creates the first admin with a valid setup token, consuming it. Atomic:
    /// two concurrent attempts cannot both succeed.
    pub fn complete_setup(
        &self,
        token: &str,
        name: &str,
        password: &str,
    ) -> Result<(), AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.query_row("SELECT COUNT(*) FROM user", [], |r| r.get::<_, i64>(0))? > 0 {
            return Err(AccountError::SetupClosed);
        }
        // The stored value is a SHA-256 of a 256-bit random token: comparing
        // hashes in SQL leaks nothing useful through timing.
        let valid: bool = tx.query_row(
            "SELECT COUNT(*) FROM setup_token WHERE hash = ?1 AND expires_at > ?2",
            params![token_hash(token), now_secs()],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if !valid {
            return Err(AccountError::BadToken);
        }
        Self::insert(&tx, name, Role::Admin, password)?;
        tx.execute("DELETE FROM setup_token", [])?;
        tx.commit()?;
        Ok(())
    }
}

pub use candor_wire::AuditEntry;

/// How long a session lasts without logging in again.
pub const SESSION_SECS: i64 = 12 * 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub csrf: String,
    /// Cameras the user may see; `None` means all of them.
    pub cameras: Option<Vec<String>>,
    /// The session's row, the handle used to list and revoke it (the secret
    /// id itself is never stored).
    pub row: i64,
    /// Made through the cloud's relay: valid only there.
    pub remote: bool,
    /// For a technician: the grant this session was made under (it ends
    /// with it).
    pub grant: Option<grants::GrantAccess>,
}

/// A stored camera list: `NULL` is every camera.
fn parse_cameras(v: Option<&str>) -> Option<Vec<String>> {
    // Written only by this module from a validated list; an unreadable value
    // grants nothing rather than everything.
    v.map(|s| serde_json::from_str(s).unwrap_or_default())
}

fn cameras_json(c: Option<&[String]>) -> Result<Option<String>, AccountError> {
    let Some(c) = c else { return Ok(None) };
    for n in c {
        if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
            return Err(AccountError::BadCameras(format!("bad camera name {n:?}")));
        }
    }
    Ok(Some(serde_json::to_string(c).expect("strings serialize")))
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

mod admin;
pub mod grants;
mod sessions;
pub mod shares;
mod totp;
pub use admin::*;

#[cfg(test)]
mod tests;
