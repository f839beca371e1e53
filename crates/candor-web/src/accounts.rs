//! User accounts and first-run setup, in `<storage.path>/accounts.db`.
//!
//! Kept apart from the footage index: different lifetime, different readers
//! (the CLI's `spans`/`export` never need it) and owner-only permissions.
//! Passwords are argon2id (the `argon2` crate's defaults: OWASP's 19 MiB,
//! t=2, p=1). There is no default password: the first admin is created with a
//! one-time setup token printed on the console, or with `candor user add`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

pub const MIN_PASSWORD_LEN: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
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
}

pub struct Accounts {
    conn: Mutex<Connection>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
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
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS user (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
                 password_hash TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS setup_token (
                 hash BLOB NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             -- Only a hash of the session id is stored: a copy of this file
             -- does not let anyone act as a logged-in user.
             CREATE TABLE IF NOT EXISTS session (
                 id_hash BLOB PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 csrf TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS audit (
                 id INTEGER PRIMARY KEY,
                 at INTEGER NOT NULL,
                 user TEXT,
                 action TEXT NOT NULL,
                 detail TEXT NOT NULL
             );",
        )?;
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
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
        Ok(Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AccountError::Hash(e.to_string()))?
            .to_string())
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    pub user: Option<String>,
    pub action: String,
    pub detail: String,
}

/// How long a session lasts without logging in again.
pub const SESSION_SECS: i64 = 12 * 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub csrf: String,
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl Accounts {
    /// Starts a session for a user whose password was verified. Returns the
    /// session id (for the cookie) and the session.
    pub fn create_session(&self, username: &str) -> Result<(String, Session), AccountError> {
        let id = random_token();
        let csrf = random_token();
        let conn = self.conn();
        let (user_id, role): (i64, String) = conn.query_row(
            "SELECT id, role FROM user WHERE name = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        conn.execute("DELETE FROM session WHERE expires_at <= ?1", [now_secs()])?;
        conn.execute(
            "INSERT INTO session (id_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash(&id), user_id, csrf, now_secs(), now_secs() + SESSION_SECS],
        )?;
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        Ok((
            id,
            Session {
                username: username.to_owned(),
                role,
                csrf,
            },
        ))
    }

    pub fn session(&self, id: &str) -> Result<Option<Session>, AccountError> {
        let row: Option<(String, String, String)> = self
            .conn()
            .query_row(
                "SELECT u.name, u.role, s.csrf FROM session s JOIN user u ON u.id = s.user_id \
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![token_hash(id), now_secs()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.and_then(|(username, role, csrf)| {
            Some(Session {
                username,
                role: Role::parse(&role)?,
                csrf,
            })
        }))
    }

    pub fn end_session(&self, id: &str) -> Result<(), AccountError> {
        self.conn()
            .execute("DELETE FROM session WHERE id_hash = ?1", [token_hash(id)])?;
        Ok(())
    }

    /// Appends to the audit log (shown to admins by the web app to come).
    pub fn audit(
        &self,
        user: Option<&str>,
        action: &str,
        detail: &str,
    ) -> Result<(), AccountError> {
        self.conn().execute(
            "INSERT INTO audit (at, user, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![now_secs(), user, action, detail],
        )?;
        Ok(())
    }

    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT at, user, action, detail FROM audit ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    user: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_token_is_single_use_and_closes_setup() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let t = a.new_setup_token(600).unwrap().unwrap();
        assert!(matches!(
            a.complete_setup("wrong", "root", "correct horse battery"),
            Err(AccountError::BadToken)
        ));
        assert!(matches!(
            a.complete_setup(&t, "root", "short"),
            Err(AccountError::WeakPassword)
        ));
        a.complete_setup(&t, "root", "correct horse battery")
            .unwrap();
        assert!(matches!(
            a.complete_setup(&t, "eve", "correct horse battery"),
            Err(AccountError::SetupClosed)
        ));
        assert_eq!(a.new_setup_token(600).unwrap(), None);
        assert_eq!(
            a.verify("root", "correct horse battery").unwrap(),
            Some(Role::Admin)
        );
        assert_eq!(a.verify("root", "wrong password!!").unwrap(), None);
        assert_eq!(a.verify("nobody", "correct horse battery").unwrap(), None);
        let (id, s) = a.create_session("root").unwrap();
        assert_eq!(a.session(&id).unwrap(), Some(s));
        a.audit(Some("root"), "login", "from 127.0.0.1").unwrap();
        assert_eq!(a.audit_log().unwrap()[0].action, "login");
        a.end_session(&id).unwrap();
        assert_eq!(a.session(&id).unwrap(), None);
    }

    #[test]
    fn expired_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let t = a.new_setup_token(-1).unwrap().unwrap();
        assert!(matches!(
            a.complete_setup(&t, "root", "correct horse battery"),
            Err(AccountError::BadToken)
        ));
    }

    #[test]
    fn passwords_are_stored_as_argon2id_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        a.add_user("ops", Role::Operator, "correct horse battery")
            .unwrap();
        assert!(matches!(
            a.add_user("ops", Role::Viewer, "correct horse battery"),
            Err(AccountError::Exists(_))
        ));
        let h: String = a
            .conn()
            .query_row("SELECT password_hash FROM user", [], |r| r.get(0))
            .unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        let mode = std::fs::metadata(dir.path().join("accounts.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
}
