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
    #[error("the last admin cannot be removed or demoted; make another admin first")]
    LastAdmin,
    #[error("the code is wrong or was already used")]
    BadCode,
    #[error("two-factor authentication is not being set up; start again")]
    NoPendingTotp,
    #[error("camera list: {0}")]
    BadCameras(String),
    #[error(
        "accounts.db is from a newer Candor (schema version {0}); run that version, or restore a backup"
    )]
    SchemaVersion(i64),
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
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")?;
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

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// Cameras the user may see; `None` means all of them.
    pub cameras: Option<Vec<String>>,
    /// The session's row, the handle used to list and revoke it (the secret
    /// id itself is never stored).
    pub row: i64,
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

impl Accounts {
    /// Starts a session for a user whose password was verified. Returns the
    /// session id (for the cookie) and the session.
    pub fn create_session(&self, username: &str) -> Result<(String, Session), AccountError> {
        self.create_session_from(username, None)
    }

    /// Starts a session for a user whose password (and second factor) was
    /// verified. Returns the session id (for the cookie) and the session.
    pub fn create_session_from(
        &self,
        username: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(String, Session), AccountError> {
        let id = random_token();
        let csrf = random_token();
        let conn = self.conn();
        let (user_id, role, cameras): (i64, String, Option<String>) = conn
            .query_row(
                "SELECT id, role, cameras FROM user WHERE name = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| AccountError::NoUser(username.to_owned()))?;
        conn.execute("DELETE FROM session WHERE expires_at <= ?1", [now_secs()])?;
        conn.execute(
            "INSERT INTO session (id_hash, user_id, csrf, created_at, expires_at, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![token_hash(&id), user_id, csrf, now_secs(), now_secs() + SESSION_SECS, ip.map(|i| i.to_string())],
        )?;
        let row = conn.last_insert_rowid();
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        Ok((
            id,
            Session {
                username: username.to_owned(),
                role,
                csrf,
                cameras: parse_cameras(cameras.as_deref()),
                row,
            },
        ))
    }

    pub fn session(&self, id: &str) -> Result<Option<Session>, AccountError> {
        let row: Option<(String, String, String, Option<String>, i64)> = self
            .conn()
            .query_row(
                "SELECT u.name, u.role, s.csrf, u.cameras, s.rowid FROM session s JOIN user u ON u.id = s.user_id \
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![token_hash(id), now_secs()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        Ok(row.and_then(|(username, role, csrf, cameras, row)| {
            Some(Session {
                username,
                role: Role::parse(&role)?,
                csrf,
                cameras: parse_cameras(cameras.as_deref()),
                row,
            })
        }))
    }

    pub fn end_session(&self, id: &str) -> Result<(), AccountError> {
        self.conn()
            .execute("DELETE FROM session WHERE id_hash = ?1", [token_hash(id)])?;
        Ok(())
    }

    /// The key that signs device cookies, made on first use.
    pub fn device_key(&self) -> Result<candor_auth::DeviceKey, AccountError> {
        let conn = self.conn();
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        conn.execute(
            "INSERT INTO server_key (name, value) VALUES ('device', ?1) ON CONFLICT (name) DO NOTHING",
            [k.to_vec()],
        )?;
        let v: Vec<u8> = conn.query_row(
            "SELECT value FROM server_key WHERE name = 'device'",
            [],
            |r| r.get(0),
        )?;
        let k: [u8; 32] = v
            .try_into()
            .map_err(|_| AccountError::Hash("stored device key has the wrong length".into()))?;
        Ok(candor_auth::DeviceKey::new(k))
    }

    /// Appends to the audit log. Every [`AUDIT_PRUNE_EVERY`]th entry also
    /// applies retention: entries older than [`AUDIT_KEEP_SECS`] go, and at
    /// most [`AUDIT_MAX_ROWS`] are kept, so the log cannot fill the disk.
    pub fn audit(
        &self,
        user: Option<&str>,
        action: &str,
        detail: &str,
    ) -> Result<(), AccountError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at, user, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![now_secs(), user, action, detail],
        )?;
        if conn.last_insert_rowid() % AUDIT_PRUNE_EVERY == 0 {
            Self::prune_audit(&conn)?;
        }
        Ok(())
    }

    fn prune_audit(conn: &Connection) -> Result<(), AccountError> {
        conn.execute(
            "DELETE FROM audit WHERE at < ?1",
            [now_secs() - AUDIT_KEEP_SECS],
        )?;
        conn.execute(
            "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1",
            [AUDIT_MAX_ROWS],
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

/// One user as the users page shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserInfo {
    pub name: String,
    pub role: &'static str,
    /// `null`: every camera.
    pub cameras: Option<Vec<String>>,
    pub totp: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    pub id: i64,
    pub user: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub role: String,
    pub cameras: Option<Vec<String>>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What an API token acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub cameras: Option<Vec<String>>,
}

/// Filters for the audit log; every field narrows.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub user: Option<String>,
    /// An action, or a prefix of one ending in `*` (`login*`).
    pub action: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub limit: Option<u32>,
    pub format: Option<String>,
}

/// Intersection of two camera scopes (`None` = all).
pub fn narrow(a: Option<&[String]>, b: Option<&[String]>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.to_vec()),
        (Some(x), Some(y)) => Some(x.iter().filter(|c| y.contains(c)).cloned().collect()),
    }
}

pub const TOKEN_PREFIX: &str = "cnd_";
const RECOVERY_CODES: usize = 10;

impl Accounts {
    fn user_id(conn: &Connection, name: &str) -> Result<i64, AccountError> {
        conn.query_row("SELECT id FROM user WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| AccountError::NoUser(name.to_owned()))
    }

    pub fn users(&self) -> Result<Vec<UserInfo>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, role, cameras, totp_secret IS NOT NULL, created_at FROM user ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(UserInfo {
                    name: r.get(0)?,
                    role: Role::parse(&role).unwrap_or(Role::Viewer).as_str(),
                    cameras: parse_cameras(r.get::<_, Option<String>>(2)?.as_deref()),
                    totp: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn add_user_scoped(
        &self,
        name: &str,
        role: Role,
        password: &str,
        cameras: Option<&[String]>,
    ) -> Result<(), AccountError> {
        let cams = cameras_json(cameras)?;
        let conn = self.conn();
        Self::insert(&conn, name, role, password)?;
        conn.execute(
            "UPDATE user SET cameras = ?1 WHERE name = ?2",
            params![cams, name],
        )?;
        Ok(())
    }

    fn admins_besides(conn: &Connection, name: &str) -> Result<i64, AccountError> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM user WHERE role = 'admin' AND name != ?1",
            [name],
            |r| r.get(0),
        )?)
    }

    /// Changes a user's role, camera list (`Some(None)`: all cameras) or
    /// password. A new password ends the user's sessions.
    pub fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        cameras: Option<Option<&[String]>>,
        password: Option<&str>,
    ) -> Result<(), AccountError> {
        let hash = match password {
            Some(p) if p.chars().count() < MIN_PASSWORD_LEN => {
                return Err(AccountError::WeakPassword);
            }
            Some(p) => Some(Self::hash_password(p)?),
            None => None,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id = Self::user_id(&tx, name)?;
        if let Some(role) = role {
            if role != Role::Admin && Self::admins_besides(&tx, name)? == 0 {
                return Err(AccountError::LastAdmin);
            }
            tx.execute(
                "UPDATE user SET role = ?1 WHERE id = ?2",
                params![role.as_str(), id],
            )?;
        }
        if let Some(c) = cameras {
            tx.execute(
                "UPDATE user SET cameras = ?1 WHERE id = ?2",
                params![cameras_json(c)?, id],
            )?;
        }
        if let Some(h) = hash {
            tx.execute(
                "UPDATE user SET password_hash = ?1 WHERE id = ?2",
                params![h, id],
            )?;
            tx.execute("DELETE FROM session WHERE user_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a user with their sessions, tokens and recovery codes.
    pub fn delete_user(&self, name: &str) -> Result<(), AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id = Self::user_id(&tx, name)?;
        if Self::admins_besides(&tx, name)? == 0 {
            return Err(AccountError::LastAdmin);
        }
        for t in ["session", "api_token", "recovery_code"] {
            tx.execute(&format!("DELETE FROM {t} WHERE user_id = ?1"), [id])?;
        }
        tx.execute("DELETE FROM user WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Sessions of `user`, or of everyone with `None`.
    pub fn sessions(&self, user: Option<&str>) -> Result<Vec<SessionInfo>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.rowid, u.name, s.created_at, s.expires_at, s.ip FROM session s JOIN user u ON u.id = s.user_id \
             WHERE s.expires_at > ?1 AND (?2 IS NULL OR u.name = ?2) ORDER BY s.created_at DESC",
        )?;
        let rows = stmt
            .query_map(params![now_secs(), user], |r| {
                Ok(SessionInfo {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    ip: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Ends session `row`, if it belongs to `owner` (any user with `None`).
    /// Returns whether one was ended.
    pub fn revoke_session(&self, row: i64, owner: Option<&str>) -> Result<bool, AccountError> {
        Ok(self.conn().execute(
            "DELETE FROM session WHERE rowid = ?1 AND (?2 IS NULL OR user_id = (SELECT id FROM user WHERE name = ?2))",
            params![row, owner],
        )? > 0)
    }

    /// Issues an API token for `user`, acting with at most `role` and
    /// `cameras`. The token is returned once; only its hash is kept.
    pub fn create_token(
        &self,
        user: &str,
        name: &str,
        role: Role,
        cameras: Option<&[String]>,
    ) -> Result<(i64, String), AccountError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(AccountError::BadName);
        }
        let cams = cameras_json(cameras)?;
        let token = format!("{TOKEN_PREFIX}{}", random_token());
        let conn = self.conn();
        let id = Self::user_id(&conn, user)?;
        conn.execute(
            "INSERT INTO api_token (user_id, name, hash, role, cameras, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, name, token_hash(&token), role.as_str(), cams, now_secs()],
        )?;
        Ok((conn.last_insert_rowid(), token))
    }

    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT t.id, u.name, t.name, t.role, t.cameras, t.created_at, t.last_used_at \
             FROM api_token t JOIN user u ON u.id = t.user_id WHERE (?1 IS NULL OR u.name = ?1) ORDER BY t.id",
        )?;
        let rows = stmt
            .query_map(params![user], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    name: r.get(2)?,
                    role: r.get(3)?,
                    cameras: parse_cameras(r.get::<_, Option<String>>(4)?.as_deref()),
                    created_at: r.get(5)?,
                    last_used_at: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn revoke_token(&self, id: i64, owner: Option<&str>) -> Result<bool, AccountError> {
        Ok(self.conn().execute(
            "DELETE FROM api_token WHERE id = ?1 AND (?2 IS NULL OR user_id = (SELECT id FROM user WHERE name = ?2))",
            params![id, owner],
        )? > 0)
    }

    /// What a presented token may do: the lesser of its own and its user's
    /// role, and the intersection of their camera lists.
    pub fn token(&self, token: &str) -> Result<Option<TokenPrincipal>, AccountError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let t = self.token_where("t.hash = ?1", token_hash(token))?;
        if let Some(t) = &t {
            self.conn().execute(
                "UPDATE api_token SET last_used_at = ?1 WHERE id = ?2",
                params![now_secs(), t.id],
            )?;
        }
        Ok(t)
    }

    /// What token `id` may do now (`None`: revoked), for streams that
    /// re-check their caller.
    pub fn token_by_id(&self, id: i64) -> Result<Option<TokenPrincipal>, AccountError> {
        self.token_where("t.id = ?1", id)
    }

    fn token_where(
        &self,
        cond: &str,
        key: impl rusqlite::ToSql,
    ) -> Result<Option<TokenPrincipal>, AccountError> {
        let conn = self.conn();
        // (token id, user, user role, token role, user cameras, token cameras)
        type Row = (i64, String, String, String, Option<String>, Option<String>);
        let row: Option<Row> = conn
            .query_row(
                &format!(
                    "SELECT t.id, u.name, u.role, t.role, u.cameras, t.cameras FROM api_token t \
                     JOIN user u ON u.id = t.user_id WHERE {cond}"
                ),
                [key],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, username, urole, trole, ucams, tcams)) = row else {
            return Ok(None);
        };
        let (Some(urole), Some(trole)) = (Role::parse(&urole), Role::parse(&trole)) else {
            return Ok(None);
        };
        let role = if urole.at_least(trole) { trole } else { urole };
        // An admin user sees every camera whatever their stored list; their
        // token is limited only by its own.
        let ucams = if urole == Role::Admin {
            None
        } else {
            parse_cameras(ucams.as_deref())
        };
        let cameras = narrow(ucams.as_deref(), parse_cameras(tcams.as_deref()).as_deref());
        Ok(Some(TokenPrincipal {
            id,
            username,
            role,
            cameras,
        }))
    }

    pub fn totp_enabled(&self, user: &str) -> Result<bool, AccountError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT totp_secret IS NOT NULL FROM user WHERE name = ?1",
                [user],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Starts enrolment: a new secret, kept pending until [`Self::totp_confirm`]
    /// proves the user's app has it. Returns the secret.
    pub fn totp_begin(&self, user: &str) -> Result<Vec<u8>, AccountError> {
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let n = self.conn().execute(
            "UPDATE user SET totp_pending = ?1 WHERE name = ?2",
            params![secret, user],
        )?;
        if n == 0 {
            return Err(AccountError::NoUser(user.to_owned()));
        }
        Ok(secret)
    }

    /// Enables the pending secret if `code` matches it; returns fresh recovery
    /// codes (shown once; only hashes are kept).
    pub fn totp_confirm(
        &self,
        user: &str,
        code: &str,
        now: i64,
    ) -> Result<Vec<String>, AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (id, pending): (i64, Option<Vec<u8>>) = tx
            .query_row(
                "SELECT id, totp_pending FROM user WHERE name = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| AccountError::NoUser(user.to_owned()))?;
        let secret = pending.ok_or(AccountError::NoPendingTotp)?;
        let step = crate::totp::verify(&secret, code, now).ok_or(AccountError::BadCode)?;
        tx.execute(
            "UPDATE user SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?1 WHERE id = ?2",
            params![step, id],
        )?;
        tx.execute("DELETE FROM recovery_code WHERE user_id = ?1", [id])?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut raw = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let c = crate::totp::base32(&raw)[..12].to_lowercase();
            let c = format!("{}-{}-{}", &c[..4], &c[4..8], &c[8..]);
            tx.execute(
                "INSERT INTO recovery_code (user_id, hash) VALUES (?1, ?2)",
                params![id, token_hash(&c)],
            )?;
            codes.push(c);
        }
        tx.commit()?;
        Ok(codes)
    }

    /// Checks a second factor: a TOTP code (each step usable once) or a
    /// recovery code (each usable once).
    pub fn totp_check(&self, user: &str, code: &str, now: i64) -> Result<bool, AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(i64, Option<Vec<u8>>, i64)> = tx
            .query_row(
                "SELECT id, totp_secret, totp_last_step FROM user WHERE name = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, Some(secret), last)) = row else {
            return Ok(false);
        };
        if let Some(step) = crate::totp::verify(&secret, code, now) {
            if step <= last {
                return Ok(false);
            }
            tx.execute(
                "UPDATE user SET totp_last_step = ?1 WHERE id = ?2",
                params![step, id],
            )?;
            tx.commit()?;
            return Ok(true);
        }
        let used = tx.execute(
            "DELETE FROM recovery_code WHERE rowid IN (SELECT rowid FROM recovery_code WHERE user_id = ?1 AND hash = ?2 LIMIT 1)",
            params![id, token_hash(code.trim())],
        )?;
        tx.commit()?;
        Ok(used > 0)
    }

    pub fn totp_disable(&self, user: &str) -> Result<(), AccountError> {
        let conn = self.conn();
        let id = Self::user_id(&conn, user)?;
        conn.execute(
            "UPDATE user SET totp_secret = NULL, totp_pending = NULL WHERE id = ?1",
            [id],
        )?;
        conn.execute("DELETE FROM recovery_code WHERE user_id = ?1", [id])?;
        Ok(())
    }

    /// The audit log, newest first, filtered.
    pub fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, AccountError> {
        let conn = self.conn();
        let (action, prefix) = match q.action.as_deref() {
            Some(a) if a.ends_with('*') => (None, Some(a.trim_end_matches('*').to_owned())),
            Some(a) => (Some(a.to_owned()), None),
            None => (None, None),
        };
        let mut stmt = conn.prepare(
            "SELECT at, user, action, detail FROM audit WHERE (?1 IS NULL OR user = ?1) \
             AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR substr(action, 1, length(?3)) = ?3) \
             AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) ORDER BY id DESC LIMIT ?6",
        )?;
        let limit = i64::from(q.limit.unwrap_or(1000).min(100_000));
        let rows = stmt
            .query_map(
                params![q.user, action, prefix, q.since, q.until, limit],
                |r| {
                    Ok(AuditEntry {
                        at: r.get(0)?,
                        user: r.get(1)?,
                        action: r.get(2)?,
                        detail: r.get(3)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
