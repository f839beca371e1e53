//! Share links: a clip (camera and range) or one camera's live view, for
//! someone without an account, until the link expires or is revoked. The
//! token is random (256 bits), shown once, kept only as a hash.

use super::{AccountError, Accounts, now_secs, random_token, token_hash};
use rusqlite::{OptionalExtension, params};

/// Links last 24 hours unless set, 7 days at most.
pub const DEFAULT_SECS: i64 = 24 * 3600;
pub const MAX_SECS: i64 = 7 * 24 * 3600;
/// Links valid (not expired, not revoked) at once.
pub const MAX_ACTIVE: i64 = 100;
const PREFIX: &str = "cshare_";

#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub id: i64,
    /// `clip` or `live`.
    pub kind: String,
    pub camera: String,
    /// The clip's range (90 kHz), for `clip`.
    pub range: Option<(i64, i64)>,
    pub note: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub views: i64,
}

const COLUMNS: &str = "id, kind, camera, start_90k, end_90k, note, created_by, created_at, expires_at, revoked_at, views";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Share> {
    let (s, e): (Option<i64>, Option<i64>) = (r.get(3)?, r.get(4)?);
    Ok(Share {
        id: r.get(0)?,
        kind: r.get(1)?,
        camera: r.get(2)?,
        range: s.zip(e),
        note: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
        views: r.get(10)?,
    })
}

impl Accounts {
    /// A new link; returns it and its token (the only time the token exists
    /// outside the link).
    pub fn create_share(
        &self,
        camera: &str,
        range: Option<(i64, i64)>,
        note: &str,
        by: &str,
        secs: i64,
    ) -> Result<(Share, String), AccountError> {
        if note.len() > 200 || note.chars().any(char::is_control) {
            return Err(AccountError::BadCameras(
                "the note must be at most 200 printable characters".into(),
            ));
        }
        let now = now_secs();
        let conn = self.conn();
        let active: i64 = conn.query_row(
            "SELECT count(*) FROM share WHERE revoked_at IS NULL AND expires_at > ?1",
            [now],
            |r| r.get(0),
        )?;
        if active >= MAX_ACTIVE {
            return Err(AccountError::TooMany("share links", MAX_ACTIVE as usize));
        }
        let token = format!("{PREFIX}{}", random_token());
        let kind = if range.is_some() { "clip" } else { "live" };
        conn.execute(
            "INSERT INTO share (token_hash, kind, camera, start_90k, end_90k, note, created_by, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                token_hash(&token),
                kind,
                camera,
                range.map(|r| r.0),
                range.map(|r| r.1),
                note,
                by,
                now,
                now + secs.clamp(60, MAX_SECS)
            ],
        )?;
        let id = conn.last_insert_rowid();
        let s = conn.query_row(
            &format!("SELECT {COLUMNS} FROM share WHERE id = ?1"),
            [id],
            row,
        )?;
        Ok((s, token))
    }

    /// The link a token opens, if it is still valid (not expired, not
    /// revoked); counts a view when `view`.
    pub fn share_by_token(&self, token: &str, view: bool) -> Result<Option<Share>, AccountError> {
        if !token.starts_with(PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let conn = self.conn();
        let s = conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM share WHERE token_hash = ?1 AND revoked_at IS NULL AND expires_at > ?2"
                ),
                params![token_hash(token), now_secs()],
                row,
            )
            .optional()?;
        if let (Some(s), true) = (&s, view) {
            conn.execute("UPDATE share SET views = views + 1 WHERE id = ?1", [s.id])?;
        }
        Ok(s)
    }

    /// Still valid (a live view checks while it plays).
    pub fn share_valid(&self, id: i64) -> bool {
        self.conn()
            .query_row(
                "SELECT count(*) FROM share WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                params![id, now_secs()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .unwrap_or(false)
    }

    /// Links, newest first: those still valid and those that ended in the
    /// last 30 days.
    pub fn shares(&self) -> Result<Vec<Share>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM share WHERE coalesce(revoked_at, expires_at) > ?1 ORDER BY id DESC LIMIT 500"
        ))?;
        let rows = stmt
            .query_map([now_secs() - 30 * 86_400], row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Revoked now; `None` if there is no such link.
    pub fn revoke_share(&self, id: i64) -> Result<Option<Share>, AccountError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE share SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now_secs()],
        )?;
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM share WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }
}
