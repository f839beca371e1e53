//! Share links: a clip (camera and range) or one camera's live view, for
//! someone without an account, until the link expires or is revoked. The
//! token is random (256 bits), shown once, kept only as a hash.

use super::{AccountError, Accounts, now_secs, parse_cameras, random_token, token_hash};
use rusqlite::{OptionalExtension, params};

/// Links last 24 hours unless set, 7 days at most.
pub const DEFAULT_SECS: i64 = 24 * 3600;
pub const MAX_SECS: i64 = 7 * 24 * 3600;
/// Links valid (not expired, not revoked) at once, in all and per creator.
pub const MAX_ACTIVE: i64 = 100;
pub const MAX_ACTIVE_PER_USER: i64 = 20;
/// Ended links are listed (and kept) this long.
const KEEP_ENDED_SECS: i64 = 30 * 86_400;
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

/// Valid now: not expired, not revoked, and its creator still exists,
/// is still an operator or admin, and may still see the camera. A link
/// never outlives the access of whoever made it.
const VALID: &str = "s.revoked_at IS NULL AND s.expires_at > ?2";

fn creator_may(conn: &rusqlite::Connection, s: &Share) -> Result<bool, AccountError> {
    let u: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT role, cameras FROM user WHERE name = ?1",
            [&s.created_by],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match u {
        Some((role, _)) if role == "admin" => true,
        Some((role, cams)) if role == "operator" => {
            parse_cameras(cams.as_deref()).is_none_or(|c| c.contains(&s.camera))
        }
        _ => false,
    })
}

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
        conn.execute(
            "DELETE FROM share WHERE coalesce(revoked_at, expires_at) < ?1",
            [now - KEEP_ENDED_SECS],
        )?;
        let (active, mine): (i64, i64) = conn.query_row(
            "SELECT count(*), count(CASE WHEN created_by = ?2 THEN 1 END) FROM share WHERE revoked_at IS NULL AND expires_at > ?1",
            params![now, by],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if active >= MAX_ACTIVE {
            return Err(AccountError::TooMany("share links", MAX_ACTIVE as usize));
        }
        if mine >= MAX_ACTIVE_PER_USER {
            return Err(AccountError::TooMany(
                "share links per user",
                MAX_ACTIVE_PER_USER as usize,
            ));
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
                &format!("SELECT {COLUMNS} FROM share s WHERE token_hash = ?1 AND {VALID}"),
                params![token_hash(token), now_secs()],
                row,
            )
            .optional()?;
        let s = match s {
            Some(s) if creator_may(&conn, &s)? => Some(s),
            _ => None,
        };
        if let (Some(s), true) = (&s, view) {
            conn.execute("UPDATE share SET views = views + 1 WHERE id = ?1", [s.id])?;
        }
        Ok(s)
    }

    /// Still valid (a live view checks while it plays).
    pub fn share_valid(&self, id: i64) -> bool {
        let conn = self.conn();
        let s = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM share s WHERE id = ?1 AND {VALID}"),
                params![id, now_secs()],
                row,
            )
            .optional();
        match s {
            Ok(Some(s)) => creator_may(&conn, &s).unwrap_or(false),
            _ => false,
        }
    }

    pub fn share_by_id(&self, id: i64) -> Result<Option<Share>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM share WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Links, newest first: every one still valid (at most
    /// [`MAX_ACTIVE`]), and those that ended in the last 30 days.
    pub fn shares(&self) -> Result<Vec<Share>, AccountError> {
        let conn = self.conn();
        let now = now_secs();
        let mut valid = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM share WHERE revoked_at IS NULL AND expires_at > ?1 ORDER BY id DESC"
        ))?;
        let mut rows = valid
            .query_map([now], row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut ended = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM share WHERE NOT (revoked_at IS NULL AND expires_at > ?1) \
             AND coalesce(revoked_at, expires_at) > ?2 ORDER BY id DESC LIMIT 500"
        ))?;
        rows.extend(
            ended
                .query_map([now, now - KEEP_ENDED_SECS], row)?
                .collect::<Result<Vec<_>, _>>()?,
        );
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
