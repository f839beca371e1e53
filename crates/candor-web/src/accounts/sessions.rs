//! Sessions, the device-cookie key and the audit log.

use super::*;
use rusqlite::{OptionalExtension, params};

/// The cameras a session sees: a technician's grant's video cameras, or
/// the user's list.
fn session_cameras(grant: Option<&grants::GrantAccess>, user: Option<&str>) -> Option<Vec<String>> {
    match grant {
        Some(g) => g.video_cameras(),
        None => parse_cameras(user),
    }
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
        self.create_session_at(username, ip, false)
    }

    /// [`Self::create_session_from`], marked remote when it was made
    /// through the cloud's relay.
    pub fn create_session_at(
        &self,
        username: &str,
        ip: Option<std::net::IpAddr>,
        remote: bool,
    ) -> Result<(String, Session), AccountError> {
        let id = random_token();
        let csrf = random_token();
        let conn = self.conn();
        let (user_id, role, cameras, technician): (i64, String, Option<String>, bool) = conn
            .query_row(
                "SELECT id, role, cameras, technician_org IS NOT NULL FROM user WHERE name = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or_else(|| AccountError::NoUser(username.to_owned()))?;
        // A technician's session is bound to the grant in force now, and
        // lasts no longer than it.
        let grant = if technician {
            Some(
                grants::active_grant(&conn, username)?
                    .ok_or_else(|| AccountError::NoUser(username.to_owned()))?,
            )
        } else {
            None
        };
        let expires = grant.as_ref().map_or(now_secs() + SESSION_SECS, |g| {
            g.expires_at.min(now_secs() + SESSION_SECS)
        });
        conn.execute("DELETE FROM session WHERE expires_at <= ?1", [now_secs()])?;
        conn.execute(
            "INSERT INTO session (id_hash, user_id, csrf, created_at, expires_at, ip, remote, grant_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![token_hash(&id), user_id, csrf, now_secs(), expires, ip.map(|i| i.to_string()), remote, grant.as_ref().map(|g| g.id)],
        )?;
        let row = conn.last_insert_rowid();
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        Ok((
            id,
            Session {
                username: username.to_owned(),
                role,
                csrf,
                cameras: session_cameras(grant.as_ref(), cameras.as_deref()),
                row,
                remote,
                grant,
            },
        ))
    }

    /// The session with this id, if it is valid now. A technician's is
    /// valid only while the grant it was made under is (checked here, on
    /// every request, so a revocation ends it at once).
    pub fn session(&self, id: &str) -> Result<Option<Session>, AccountError> {
        type R = (String, String, String, Option<String>, i64, bool, bool);
        type G = (Option<i64>, Option<String>, Option<String>, Option<i64>);
        let row: Option<(R, G)> = self
            .conn()
            .query_row(
                "SELECT u.name, u.role, s.csrf, u.cameras, s.rowid, s.remote, u.technician_org IS NOT NULL, \
                 g.id, g.scopes, g.cameras, g.expires_at \
                 FROM session s JOIN user u ON u.id = s.user_id \
                 LEFT JOIN access_grant g ON g.id = s.grant_id AND g.user_id = u.id \
                   AND g.revoked_at IS NULL AND g.expires_at > ?2 \
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![token_hash(id), now_secs()],
                |r| {
                    Ok((
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
                        (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
                    ))
                },
            )
            .optional()?;
        let Some(((username, role, csrf, cameras, row, remote, technician), g)) = row else {
            return Ok(None);
        };
        let grant = match (technician, g) {
            (false, _) => None,
            (true, (Some(id), Some(scopes), cams, Some(expires_at))) => Some(grants::GrantAccess {
                id,
                scopes: grants::Scopes::load(&scopes),
                cameras: parse_cameras(cams.as_deref()),
                expires_at,
            }),
            // A technician without a grant in force has no session.
            (true, _) => return Ok(None),
        };
        Ok(Role::parse(&role).map(|role| Session {
            username,
            role,
            csrf,
            cameras: session_cameras(grant.as_ref(), cameras.as_deref()),
            row,
            remote,
            grant,
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

    pub(super) fn prune_audit(conn: &Connection) -> Result<(), AccountError> {
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
