//! Technicians' access: grants made here by an admin of this recorder (who
//! may be answering a request relayed by the cloud, or typing one in),
//! for a time and a scope (docs/design/installers.md). The recorder alone
//! decides: nothing the cloud sends creates, widens or extends a grant.
//!
//! A technician is a `user` row with `technician_org` set and the viewer
//! role. They sign in with their own password and TOTP, both set by them
//! through a one-time enrolment code the granting admin hands over (out of
//! band: the cloud never sees it). A session is bound to the grant it was
//! made under, and ends when that grant expires or is revoked.

use super::*;
use rusqlite::{OptionalExtension, params};

/// What a grant lets a technician do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scopes {
    /// Change the configuration: cameras, motion and object settings, the
    /// config file, its history and rollback.
    #[serde(default)]
    pub config: bool,
    /// Health, camera diagnostics and connectivity tests, logs, the support bundle.
    #[serde(default)]
    pub diagnostics: bool,
    /// Live video of the grant's cameras.
    #[serde(default)]
    pub live: bool,
    /// Recordings and events of the grant's cameras.
    #[serde(default)]
    pub playback: bool,
    /// Install a signed release (now or scheduled) that the recorder's
    /// own update check offers: it still verifies everything itself.
    #[serde(default)]
    pub maintenance: bool,
}

/// One of [`Scopes`], as a route of the table asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every technician, whatever the grant (who am I, sign out).
    Any,
    Config,
    Diagnostics,
    Live,
    Playback,
    Maintenance,
}

impl Scopes {
    pub fn allows(&self, s: Scope) -> bool {
        match s {
            Scope::Any => true,
            Scope::Config => self.config,
            Scope::Diagnostics => self.diagnostics,
            Scope::Live => self.live,
            Scope::Playback => self.playback,
            Scope::Maintenance => self.maintenance,
        }
    }

    pub fn video(&self) -> bool {
        self.live || self.playback
    }

    pub fn is_empty(&self) -> bool {
        !(self.config || self.diagnostics || self.live || self.playback || self.maintenance)
    }

    /// Whether every scope of `self` is in `of` (a narrowed grant).
    pub fn within(&self, of: &Scopes) -> bool {
        (!self.config || of.config)
            && (!self.diagnostics || of.diagnostics)
            && (!self.live || of.live)
            && (!self.playback || of.playback)
            && (!self.maintenance || of.maintenance)
    }

    /// The scope names, as the link carries them.
    pub fn names(&self) -> Vec<String> {
        self.store()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// From the link's names (unknown ones are dropped).
    pub fn from_names(names: &[String]) -> Scopes {
        Scopes::load(&names.join(","))
    }

    fn store(&self) -> String {
        [
            (self.config, "config"),
            (self.diagnostics, "diagnostics"),
            (self.live, "live"),
            (self.playback, "playback"),
            (self.maintenance, "maintenance"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
    }

    pub(super) fn load(s: &str) -> Scopes {
        let has = |n| s.split(',').any(|x| x == n);
        Scopes {
            config: has("config"),
            diagnostics: has("diagnostics"),
            live: has("live"),
            playback: has("playback"),
            maintenance: has("maintenance"),
        }
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.store();
        f.write_str(if s.is_empty() { "nothing" } else { &s })
    }
}

/// The grant a technician's session acts under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantAccess {
    pub id: i64,
    pub scopes: Scopes,
    /// Cameras whose video the grant shows (`None`: all), when it has live
    /// or playback.
    pub cameras: Option<Vec<String>>,
    pub expires_at: i64,
}

impl GrantAccess {
    /// The cameras this grant lets the technician see video of.
    pub fn video_cameras(&self) -> Option<Vec<String>> {
        if self.scopes.video() {
            self.cameras.clone()
        } else {
            Some(Vec::new())
        }
    }
}

/// Durations a grant may have, in hours.
pub const GRANT_HOURS: [u32; 5] = [1, 2, 4, 8, 24];
/// Requests waiting for an answer at most; more are refused until some
/// are answered (the cloud cannot fill the table).
pub const MAX_WAITING_REQUESTS: i64 = 20;
/// An enrolment code is valid this long, and never past its grant.
pub const ENROLL_SECS: i64 = 24 * 3600;
/// Technicians' passwords are longer than other users' minimum: they are
/// typed over the internet into a recorder that is not theirs.
pub const TECHNICIAN_MIN_PASSWORD: usize = 12;

/// A grant to make.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The technician's sign-in name here, e.g. `bob@acme-security`.
    pub technician: String,
    /// Their company, as they and the owner know it.
    pub org: String,
    pub scopes: Scopes,
    /// Cameras for live and playback (`null`: all).
    pub cameras: Option<Vec<String>>,
    pub hours: u32,
    pub reason: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Grant {
    pub id: i64,
    pub technician: String,
    pub org: String,
    pub scopes: Scopes,
    pub cameras: Option<Vec<String>>,
    pub reason: String,
    pub approved_by: String,
    pub approved_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub first_used_at: Option<i64>,
    /// The technician has set their password and TOTP here.
    pub enrolled: bool,
    pub request_id: Option<i64>,
}

impl Grant {
    /// As the link carries it to the cloud.
    pub fn note(&self) -> candor_link::GrantNote {
        candor_link::GrantNote {
            id: self.id as u64,
            technician: self.technician.clone(),
            org: self.org.clone(),
            scopes: self.scopes.names(),
            expires_at: self.expires_at,
        }
    }

    pub fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A request for access, as a technician (through the cloud) or an admin made it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub at: i64,
    pub technician: String,
    pub org: String,
    pub scopes: Scopes,
    pub cameras: Option<Vec<String>>,
    pub hours: u32,
    pub reason: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub grant_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{0:?} is (or looks like) a user of this recorder, not a technician; choose another name"
    )]
    NotTechnician(String),
    #[error("no such grant or request")]
    NotFound,
    #[error("the enrolment code is wrong, used or expired; ask the owner for a new grant")]
    BadEnrolment,
    #[error("{MAX_WAITING_REQUESTS} requests are waiting already; answer some first")]
    TooManyRequests,
    #[error("{0}")]
    Account(#[from] AccountError),
}

impl From<rusqlite::Error> for GrantError {
    fn from(e: rusqlite::Error) -> Self {
        GrantError::Account(AccountError::Db(e))
    }
}

fn check_new(g: &NewGrant) -> Result<(), GrantError> {
    let bad = |m: &str| Err(GrantError::Invalid(m.to_owned()));
    if !valid_name(&g.technician) {
        return bad(
            "the technician's name must be 1-64 letters, digits, '.', '_', '-' or '@' (e.g. bob@acme-security)",
        );
    }
    if g.org.trim().is_empty() || g.org.len() > 64 || g.org.chars().any(char::is_control) {
        return bad("the company name must be 1-64 printable characters");
    }
    if g.reason.len() > 500 || g.reason.chars().any(|c| c.is_control() && c != '\n') {
        return bad("the reason is at most 500 characters");
    }
    if !GRANT_HOURS.contains(&g.hours) {
        return bad("a grant lasts 1, 2, 4, 8 or 24 hours");
    }
    if g.scopes.is_empty() {
        return bad("a grant needs at least one of config, diagnostics, live, playback");
    }
    Ok(())
}

const GRANT_COLUMNS: &str = "g.id, u.name, u.technician_org, g.scopes, g.cameras, g.reason, \
     g.approved_by, g.approved_at, g.expires_at, g.revoked_at, g.revoked_by, g.first_used_at, \
     u.totp_secret IS NOT NULL, g.request_id";

fn grant_row(r: &rusqlite::Row) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: r.get(0)?,
        technician: r.get(1)?,
        org: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        scopes: Scopes::load(&r.get::<_, String>(3)?),
        cameras: parse_cameras(r.get::<_, Option<String>>(4)?.as_deref()),
        reason: r.get(5)?,
        approved_by: r.get(6)?,
        approved_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
        revoked_by: r.get(10)?,
        first_used_at: r.get(11)?,
        enrolled: r.get(12)?,
        request_id: r.get(13)?,
    })
}

impl Accounts {
    /// Makes a grant (ending any the technician has now). Returns it, and
    /// the one-time enrolment code when the technician has no password and
    /// TOTP here yet (shown once; only its hash is kept).
    pub fn create_grant(
        &self,
        g: &NewGrant,
        by: &str,
        request: Option<i64>,
    ) -> Result<(Grant, Option<String>), GrantError> {
        check_new(g)?;
        let cameras = cameras_json(g.cameras.as_deref())?;
        // An unusable password until the technician sets theirs.
        let placeholder = Self::hash_password(&random_token())?;
        let now = now_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<(i64, Option<String>, bool)> = tx
            .query_row(
                "SELECT id, technician_org, totp_secret IS NOT NULL FROM user WHERE name = ?1",
                [&g.technician],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let lookalike: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM user WHERE lower(name) = lower(?1) AND name != ?1",
            [&g.technician],
            |r| r.get(0),
        )?;
        if lookalike {
            return Err(GrantError::NotTechnician(g.technician.clone()));
        }
        let (user_id, enrolled) = match existing {
            Some((_, None, _)) => return Err(GrantError::NotTechnician(g.technician.clone())),
            Some((id, Some(_), enrolled)) => {
                tx.execute(
                    "UPDATE user SET technician_org = ?1 WHERE id = ?2",
                    params![g.org.trim(), id],
                )?;
                (id, enrolled)
            }
            None => {
                tx.execute(
                    "INSERT INTO user (name, role, password_hash, created_at, cameras, technician_org) \
                     VALUES (?1, 'viewer', ?2, ?3, '[]', ?4)",
                    params![g.technician, placeholder, now, g.org.trim()],
                )?;
                (tx.last_insert_rowid(), false)
            }
        };
        let expires = now + i64::from(g.hours) * 3600;
        let code = (!enrolled).then(random_token);
        tx.execute(
            "INSERT INTO access_grant (user_id, scopes, cameras, reason, approved_by, approved_at, \
             expires_at, enroll_hash, enroll_expires, request_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                user_id,
                g.scopes.store(),
                cameras,
                g.reason.trim(),
                by,
                now,
                expires,
                code.as_deref().map(token_hash),
                code.as_ref().map(|_| (now + ENROLL_SECS).min(expires)),
                request,
            ],
        )?;
        let id = tx.last_insert_rowid();
        // One grant at a time per technician: the new one replaces any other.
        tx.execute(
            "UPDATE access_grant SET revoked_at = ?1, revoked_by = ?2 \
             WHERE user_id = ?3 AND id != ?4 AND revoked_at IS NULL AND expires_at > ?1",
            params![now, format!("replaced by grant {id}"), user_id, id],
        )?;
        tx.execute(
            "DELETE FROM session WHERE user_id = ?1 AND (grant_id IS NULL OR grant_id != ?2)",
            params![user_id, id],
        )?;
        let grant = tx.query_row(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM access_grant g JOIN user u ON u.id = g.user_id WHERE g.id = ?1"
            ),
            [id],
            grant_row,
        )?;
        tx.commit()?;
        Ok((grant, code))
    }

    /// Grants active now, and those that ended in the last 30 days, newest first.
    pub fn grants(&self) -> Result<Vec<Grant>, AccountError> {
        let conn = self.conn();
        let mut q = conn.prepare(&format!(
            "SELECT {GRANT_COLUMNS} FROM access_grant g JOIN user u ON u.id = g.user_id \
             WHERE MIN(g.expires_at, COALESCE(g.revoked_at, g.expires_at)) > ?1 ORDER BY g.id DESC"
        ))?;
        let rows = q.query_map([now_secs() - 30 * 86400], grant_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn grant(&self, id: i64) -> Result<Option<Grant>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM access_grant g JOIN user u ON u.id = g.user_id WHERE g.id = ?1"
                ),
                [id],
                grant_row,
            )
            .optional()?)
    }

    /// Grants in force that answer a request the cloud relayed: what the
    /// cloud may know of (grants made for a request typed here, or without
    /// one, are not its business); at most as many as a link message holds,
    /// the newest.
    pub fn cloud_grants(&self) -> Result<Vec<Grant>, AccountError> {
        cloud_grants(&self.conn())
    }

    /// The list to report to the cloud and its number: the newest reported
    /// one's if it is the same, else the next (read and numbered under one
    /// lock, so two reports racing can't number an older list higher). The
    /// last [`KEPT_REPORTS`] are kept, and always the newest the cloud
    /// confirmed.
    pub fn grant_report(&self) -> Result<(u64, Vec<candor_link::GrantNote>), AccountError> {
        let conn = self.conn();
        let grants: Vec<candor_link::GrantNote> =
            cloud_grants(&conn)?.iter().map(Grant::note).collect();
        // Plain structs of strings and numbers: serialising can't fail.
        let json = serde_json::to_string(&grants).unwrap_or_default();
        let newest: Option<(i64, String)> = conn
            .query_row(
                "SELECT generation, grants FROM cloud_grant_report ORDER BY generation DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((g, j)) = &newest
            && *j == json
        {
            return Ok((*g as u64, grants));
        }
        let g = newest.map_or(1, |(g, _)| g + 1);
        conn.execute(
            "INSERT INTO cloud_grant_report (generation, grants, at) VALUES (?1, ?2, ?3)",
            params![g, json, now_secs()],
        )?;
        conn.execute(
            "DELETE FROM cloud_grant_report WHERE generation <= ?1 AND generation < \
             COALESCE((SELECT MAX(generation) FROM cloud_grant_report WHERE stored = 1), ?2)",
            params![g - KEPT_REPORTS, g],
        )?;
        Ok((g as u64, grants))
    }

    /// The cloud confirmed storing this generation, on link connection
    /// `conn` (the first confirmation's is kept).
    pub fn grant_report_stored(&self, generation: u64, conn: u64) -> Result<(), AccountError> {
        self.conn().execute(
            "UPDATE cloud_grant_report SET stored = 1, stored_conn = ?2 WHERE generation = ?1 AND stored = 0",
            params![generation as i64, conn as i64],
        )?;
        Ok(())
    }

    /// A reported list by generation (if still kept), the newest
    /// generation the cloud confirmed storing before link connection
    /// `conn` (the cloud quotes its mirror as the connection starts, so a
    /// confirmation on the same connection may be newer than the quote),
    /// and the oldest and newest generations kept.
    pub fn grant_reports(
        &self,
        generation: u64,
        link_conn: u64,
    ) -> Result<ReportsSeen, AccountError> {
        let conn = self.conn();
        let list: Option<String> = conn
            .query_row(
                "SELECT grants FROM cloud_grant_report WHERE generation = ?1",
                [generation as i64],
                |r| r.get(0),
            )
            .optional()?;
        let stored: Option<i64> = conn.query_row(
            "SELECT MAX(generation) FROM cloud_grant_report WHERE stored = 1 AND stored_conn != ?1",
            [link_conn as i64],
            |r| r.get(0),
        )?;
        let (oldest, newest): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT MIN(generation), MAX(generation) FROM cloud_grant_report",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(ReportsSeen {
            sent: list.and_then(|j| serde_json::from_str(&j).ok()),
            stored: stored.map(|g| g as u64),
            kept: oldest.zip(newest).map(|(a, b)| (a as u64, b as u64)),
        })
    }

    /// Whether grant `id` answers a request the cloud relayed.
    pub fn grant_from_cloud(&self, id: i64) -> Result<bool, AccountError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) > 0 FROM access_grant g JOIN access_request r ON r.id = g.request_id \
             WHERE g.id = ?1 AND r.source = 'cloud'",
            [id],
            |r| r.get(0),
        )?)
    }

    /// Ends a grant now; its technician's sessions end with it (this
    /// request on). Returns the grant as it was, if it was active.
    pub fn revoke_grant(&self, id: i64, by: &str) -> Result<Option<Grant>, AccountError> {
        let g = match self.grant(id)? {
            Some(g) if g.active(now_secs()) => g,
            _ => return Ok(None),
        };
        let conn = self.conn();
        conn.execute(
            "UPDATE access_grant SET revoked_at = ?1, revoked_by = ?2, end_noted = 1 WHERE id = ?3",
            params![now_secs(), by, id],
        )?;
        conn.execute("DELETE FROM session WHERE grant_id = ?1", [id])?;
        Ok(Some(g))
    }

    /// Grants that ran out since the last call (each returned once).
    pub fn grants_ended_unnoted(&self) -> Result<Vec<Grant>, AccountError> {
        let conn = self.conn();
        let mut q = conn.prepare(&format!(
            "SELECT {GRANT_COLUMNS} FROM access_grant g JOIN user u ON u.id = g.user_id \
             WHERE g.end_noted = 0 AND g.revoked_at IS NULL AND g.expires_at <= ?1"
        ))?;
        let ended: Vec<Grant> = q
            .query_map([now_secs()], grant_row)?
            .collect::<Result<_, _>>()?;
        for g in &ended {
            conn.execute(
                "UPDATE access_grant SET end_noted = 1 WHERE id = ?1",
                [g.id],
            )?;
        }
        Ok(ended)
    }

    /// Whether `user` is a technician (their access comes from grants only).
    pub fn is_technician(&self, user: &str) -> Result<bool, AccountError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT technician_org IS NOT NULL FROM user WHERE name = ?1",
                [user],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// The technician's grant in force now.
    pub fn active_grant(&self, user: &str) -> Result<Option<GrantAccess>, AccountError> {
        let conn = self.conn();
        active_grant(&conn, user)
    }

    /// Records the first sign-in under a grant. True the first time.
    pub fn grant_used(&self, id: i64) -> Result<bool, AccountError> {
        Ok(self.conn().execute(
            "UPDATE access_grant SET first_used_at = ?1 WHERE id = ?2 AND first_used_at IS NULL",
            params![now_secs(), id],
        )? > 0)
    }

    /// The technician an enrolment code is for, if it is valid now.
    fn enrolment(&self, code: &str) -> Result<Option<String>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT u.name FROM access_grant g JOIN user u ON u.id = g.user_id \
                 WHERE g.enroll_hash = ?1 AND g.enroll_expires > ?2 AND g.revoked_at IS NULL \
                 AND g.expires_at > ?2",
                params![token_hash(code), now_secs()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether an enrolment code is valid now (a cheap check before any
    /// password is hashed).
    pub fn enrolment_valid(&self, code: &str) -> Result<bool, AccountError> {
        Ok(self.enrolment(code)?.is_some())
    }

    /// Enrolment, step 1: a new TOTP secret for the technician the code is for.
    pub fn enroll_begin(&self, code: &str) -> Result<(String, Vec<u8>), GrantError> {
        let name = self.enrolment(code)?.ok_or(GrantError::BadEnrolment)?;
        let secret = self.totp_begin(&name)?;
        Ok((name, secret))
    }

    /// Enrolment, step 2: the technician's password, and a code proving
    /// their authenticator has the secret. Uses the enrolment code up.
    /// Returns their name and recovery codes.
    pub fn enroll_finish(
        &self,
        code: &str,
        password: &str,
        totp: &str,
        now: i64,
    ) -> Result<(String, Vec<String>), GrantError> {
        let name = self.enrolment(code)?.ok_or(GrantError::BadEnrolment)?;
        if password.chars().count() < TECHNICIAN_MIN_PASSWORD {
            return Err(GrantError::Invalid(format!(
                "a technician's password has at least {TECHNICIAN_MIN_PASSWORD} characters"
            )));
        }
        let hash = Self::hash_password(password)?;
        let codes = self.totp_confirm(&name, totp, now)?;
        let conn = self.conn();
        conn.execute(
            "UPDATE user SET password_hash = ?1 WHERE name = ?2",
            params![hash, name],
        )?;
        conn.execute(
            "UPDATE access_grant SET enroll_hash = NULL, enroll_expires = NULL WHERE enroll_hash = ?1",
            [token_hash(code)],
        )?;
        Ok((name, codes))
    }

    /// Stores a request for access (it grants nothing). `source`: `cloud`
    /// or `local`.
    pub fn add_request(&self, r: &Request, source: &str) -> Result<i64, GrantError> {
        check_new(&NewGrant {
            technician: r.technician.clone(),
            org: r.org.clone(),
            scopes: r.scopes,
            cameras: r.cameras.clone(),
            hours: r.hours,
            reason: r.reason.clone(),
        })?;
        let conn = self.conn();
        // Not a name that is (or looks like) one of this recorder's users.
        let clash: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM user WHERE lower(name) = lower(?1) AND technician_org IS NULL",
            [&r.technician],
            |r| r.get(0),
        )?;
        if clash {
            return Err(GrantError::NotTechnician(r.technician.clone()));
        }
        // One waiting request per technician and company: a newer one
        // replaces the older, so one asker can't fill the list.
        conn.execute(
            "UPDATE access_request SET state = 'replaced', decided_at = ?1 \
             WHERE state = 'waiting' AND technician = ?2 AND org = ?3",
            params![now_secs(), r.technician, r.org.trim()],
        )?;
        let waiting: i64 = conn.query_row(
            "SELECT COUNT(*) FROM access_request WHERE state = 'waiting'",
            [],
            |r| r.get(0),
        )?;
        if waiting >= MAX_WAITING_REQUESTS {
            return Err(GrantError::TooManyRequests);
        }
        conn.execute(
            "INSERT INTO access_request (at, technician, org, scopes, cameras, hours, reason, source) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now_secs(),
                r.technician,
                r.org.trim(),
                r.scopes.store(),
                cameras_json(r.cameras.as_deref())?,
                r.hours,
                r.reason.trim(),
                source
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Requests waiting, and those answered in the last 30 days, newest first.
    pub fn requests(&self) -> Result<Vec<Request>, AccountError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT id, at, technician, org, scopes, cameras, hours, reason, source, state, decided_by, grant_id \
             FROM access_request WHERE state = 'waiting' OR decided_at > ?1 ORDER BY id DESC",
        )?;
        let rows = q.query_map([now_secs() - 30 * 86400], |r| {
            Ok(Request {
                id: r.get(0)?,
                at: r.get(1)?,
                technician: r.get(2)?,
                org: r.get(3)?,
                scopes: Scopes::load(&r.get::<_, String>(4)?),
                cameras: parse_cameras(r.get::<_, Option<String>>(5)?.as_deref()),
                hours: r.get(6)?,
                reason: r.get(7)?,
                source: r.get(8)?,
                state: r.get(9)?,
                decided_by: r.get(10)?,
                grant_id: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Answers a waiting request: `Some(grant)` approves it as given (which
    /// may only narrow what was asked), `None` refuses it.
    pub fn decide_request(
        &self,
        id: i64,
        approve: Option<&NewGrant>,
        by: &str,
    ) -> Result<Option<(Grant, Option<String>)>, GrantError> {
        let r = self
            .requests()?
            .into_iter()
            .find(|r| r.id == id && r.state == "waiting")
            .ok_or(GrantError::NotFound)?;
        let made = match approve {
            Some(g) => {
                let narrower = g.technician == r.technician
                    && g.scopes.within(&r.scopes)
                    && g.hours <= r.hours
                    && match (&r.cameras, &g.cameras) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(asked), Some(given)) => given.iter().all(|c| asked.contains(c)),
                    };
                if !narrower {
                    return Err(GrantError::Invalid(
                        "an approval may narrow a request (fewer scopes, cameras or hours), not widen it".into(),
                    ));
                }
                Some(self.create_grant(g, by, Some(id))?)
            }
            None => None,
        };
        self.conn().execute(
            "UPDATE access_request SET state = ?1, decided_by = ?2, decided_at = ?3, grant_id = ?4 WHERE id = ?5",
            params![
                if made.is_some() { "approved" } else { "refused" },
                by,
                now_secs(),
                made.as_ref().map(|(g, _)| g.id),
                id
            ],
        )?;
        Ok(made)
    }
}

/// Lists reported to the cloud kept for judging its quotes.
pub const KEPT_REPORTS: i64 = 200;

/// What the recorder knows of a quoted list's number.
#[derive(Debug)]
pub struct ReportsSeen {
    /// The list sent under that number, if kept.
    pub sent: Option<Vec<candor_link::GrantNote>>,
    /// The newest number the cloud confirmed on an earlier connection.
    pub stored: Option<u64>,
    /// The oldest and newest numbers kept.
    pub kept: Option<(u64, u64)>,
}

fn cloud_grants(conn: &Connection) -> Result<Vec<Grant>, AccountError> {
    let mut q = conn.prepare(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grant g JOIN user u ON u.id = g.user_id \
         JOIN access_request r ON r.id = g.request_id \
         WHERE r.source = 'cloud' AND g.revoked_at IS NULL AND g.expires_at > ?1 \
         ORDER BY g.id DESC LIMIT ?2"
    ))?;
    let rows = q.query_map(
        params![now_secs(), candor_link::MAX_GRANTS as i64],
        grant_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The technician's grant in force now (the newest active one).
pub(super) fn active_grant(
    conn: &Connection,
    user: &str,
) -> Result<Option<GrantAccess>, AccountError> {
    Ok(conn
        .query_row(
            "SELECT g.id, g.scopes, g.cameras, g.expires_at FROM access_grant g JOIN user u ON u.id = g.user_id \
             WHERE u.name = ?1 AND g.revoked_at IS NULL AND g.expires_at > ?2 ORDER BY g.id DESC LIMIT 1",
            params![user, now_secs()],
            |r| {
                Ok(GrantAccess {
                    id: r.get(0)?,
                    scopes: Scopes::load(&r.get::<_, String>(1)?),
                    cameras: parse_cameras(r.get::<_, Option<String>>(2)?.as_deref()),
                    expires_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}
