//! What the users page manages: users, their sessions and API tokens.

use super::*;
use rusqlite::{OptionalExtension, params};

pub use candor_wire::{SessionInfo, TokenInfo, UserInfo};

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
pub(super) const RECOVERY_CODES: usize = 10;

impl Accounts {
    pub(super) fn user_id(conn: &Connection, name: &str) -> Result<i64, AccountError> {
        conn.query_row("SELECT id FROM user WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| AccountError::NoUser(name.to_owned()))
    }

    pub fn users(&self) -> Result<Vec<UserInfo>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, role, cameras, totp_secret IS NOT NULL, created_at FROM user \
             WHERE technician_org IS NULL ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(UserInfo {
                    name: r.get(0)?,
                    role: Role::parse(&role)
                        .unwrap_or(Role::Viewer)
                        .as_str()
                        .to_owned(),
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

    pub(super) fn admins_besides(conn: &Connection, name: &str) -> Result<i64, AccountError> {
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
        let technician: bool = tx.query_row(
            "SELECT technician_org IS NOT NULL FROM user WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if technician {
            return Err(AccountError::Technician(name.to_owned()));
        }
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
        // Their share links end with them (a new user of the same name must
        // not revive them).
        tx.execute(
            "UPDATE share SET revoked_at = ?2 WHERE created_by = ?1 AND revoked_at IS NULL",
            rusqlite::params![name, super::now_secs()],
        )?;
        tx.execute("DELETE FROM user WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Sessions of `user`, or of everyone with `None`.
    pub fn sessions(&self, user: Option<&str>) -> Result<Vec<SessionInfo>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.rowid, u.name, s.created_at, s.expires_at, s.ip, s.remote FROM session s JOIN user u ON u.id = s.user_id \
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
                    remote: r.get(5)?,
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

    pub(super) fn token_where(
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
}
