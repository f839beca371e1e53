//! Second factors (TOTP and recovery codes) and audit queries.

use super::*;
use rusqlite::{OptionalExtension, params};

impl Accounts {
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
