//! Installer organisations (docs/design/installers.md): members (org admins
//! and technicians), sites linked to an organisation by their owner with a
//! one-time code (made by either side), and the fleet view: every linked
//! site with the health its owner chose to share with the installer.
//!
//! Nothing here reaches a recorder: linking shares status the site already
//! sends; access to a recorder is granted by its owner on the recorder.
//! Limits: 10 organisations made per account, 500 members per
//! organisation, link codes valid 7 days and used once.

use super::*;
use axum::extract::{Path, Query};

pub const MAX_ORGS_MADE: i64 = 10;
pub const MAX_MEMBERS: i64 = 500;
pub const CODE_SECS: i64 = 7 * 86400;

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such organisation")
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", m)
}

/// What the owner lets the installer see: `online` (online or not, and
/// the software version) or `health` (also cameras, disk, days of footage
/// and the last alarm), never more than the site itself shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Online,
    Health,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Online => "online",
            Level::Health => "health",
        }
    }
    fn parse(s: &str) -> Level {
        if s == "health" {
            Level::Health
        } else {
            Level::Online
        }
    }
}

/// The caller's role in `org` (`admin` or `technician`), or 404.
async fn role(cloud: &Cloud, me: &Me, org: &str) -> ApiResult<String> {
    cloud
        .db
        .query_one(
            "SELECT role FROM org_member WHERE org = $1 AND account = $2",
            vec![org.into(), me.account.clone().into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?
        .ok_or_else(not_found)
}

async fn org_admin(cloud: &Cloud, me: &Me, org: &str) -> ApiResult<()> {
    if role(cloud, me, org).await? != "admin" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the organisation's admins may do this",
        ));
    }
    Ok(())
}

/// 80 random bits as 16 base32 letters in groups of four.
fn new_code() -> String {
    let raw: [u8; 10] = rand::random();
    let s = candor_auth::totp::base32(&raw);
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

fn code_hash(code: &str) -> String {
    hash(&code.trim().to_ascii_uppercase().replace(['-', ' '], ""))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrg {
    name: String,
}

pub(super) async fn create_org(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(b): Json<NewOrg>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let me = me_csrf(&cloud, &headers).await?;
    let name = b.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(bad(
            "an organisation's name is 1 to 64 printable characters",
        ));
    }
    let made = cloud
        .db
        .query_one(
            "SELECT COUNT(*) FROM org_member WHERE account = $1 AND role = 'admin'",
            vec![me.account.clone().into()],
        )
        .await?
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    if made >= MAX_ORGS_MADE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many",
            format!("at most {MAX_ORGS_MADE} organisations per account"),
        ));
    }
    let id = crate::link::new_id();
    cloud
        .db
        .exec(
            "INSERT INTO org (id, name, created) VALUES ($1, $2, $3)",
            vec![id.clone().into(), name.into(), now().into()],
        )
        .await?;
    cloud
        .db
        .exec(
            "INSERT INTO org_member (org, account, role) VALUES ($1, $2, 'admin')",
            vec![id.clone().into(), me.account.clone().into()],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "name": name, "role": "admin" })),
    ))
}

/// The organisations the caller belongs to.
pub(super) async fn orgs(
    State(cloud): Cl,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    let rows = cloud
        .db
        .query(
            "SELECT o.id, o.name, m.role, (SELECT COUNT(*) FROM site_link l WHERE l.org = o.id) \
             FROM org_member m JOIN org o ON o.id = m.org WHERE m.account = $1 ORDER BY o.name",
            vec![me.account.into()],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(serde_json::json!({
                "id": r.text(0)?, "name": r.text(1)?, "role": r.text(2)?, "sites": r.int(3)?,
            }))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(serde_json::json!({ "orgs": list })))
}

/// Membership changes one at a time: "is this the last admin?" and the
/// removal must not interleave (two admins removing each other at once
/// would both see another admin left). The cloud runs as one process.
static MEMBERSHIP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An invitation is valid this long: it is handed to one person, now.
pub const INVITE_SECS: i64 = 2 * 86400;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewInvite {
    role: String,
}

/// `POST /api/orgs/{org}/invites`: an org admin makes a one-time code that
/// makes whoever enters it a member, as `admin` or `technician`. Members
/// join with a code the admin handed them, never by e-mail address: the
/// cloud doesn't verify addresses, so an account named like an employee's
/// address proves nothing, and asking by address would tell which
/// addresses have accounts.
pub(super) async fn invite(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
    Json(b): Json<NewInvite>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let me = me_csrf(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    if !matches!(b.role.as_str(), "admin" | "technician") {
        return Err(bad("a member is an admin or a technician"));
    }
    cloud
        .db
        .exec(
            "DELETE FROM org_invite WHERE expires <= $1",
            vec![now().into()],
        )
        .await?;
    // Outstanding invitations count against the members' cap, so codes
    // can't be piled up beyond it.
    let n = members_and_invites(&cloud, &org).await?;
    if n >= MAX_MEMBERS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many",
            format!("at most {MAX_MEMBERS} members and open invitations"),
        ));
    }
    let code = new_code();
    cloud
        .db
        .exec(
            "INSERT INTO org_invite (code, org, role, expires, made_by) VALUES ($1, $2, $3, $4, $5)",
            vec![
                code_hash(&code).into(),
                org.into(),
                b.role.clone().into(),
                (now() + INVITE_SECS).into(),
                me.account.clone().into(),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "code": code, "role": b.role, "expires": crate::ts(now() + INVITE_SECS),
        })),
    ))
}

async fn members_and_invites(cloud: &Cloud, org: &str) -> ApiResult<i64> {
    Ok(cloud
        .db
        .query_one(
            "SELECT (SELECT COUNT(*) FROM org_member WHERE org = $1) + \
             (SELECT COUNT(*) FROM org_invite WHERE org = $1 AND expires > $2)",
            vec![org.into(), now().into()],
        )
        .await?
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    code: String,
}

/// `POST /api/orgs/join`: the signed-in account enters an invitation and
/// becomes a member (used once, by one `DELETE … RETURNING`).
pub(super) async fn join(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(b): Json<JoinBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_csrf(&cloud, &headers).await?;
    let r = cloud
        .db
        .query_one(
            "DELETE FROM org_invite WHERE code = $1 AND expires > $2 RETURNING org, role",
            vec![code_hash(b.code.trim()).into(), now().into()],
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "bad_code",
                "the invitation is wrong, used or expired; ask for a new one",
            )
        })?;
    let (org, role) = (r.text(0)?, r.text(1)?);
    let _one = MEMBERSHIP.lock().await;
    // An invitation never lowers a role: an admin entering a technician's
    // code stays admin (else the last admin could demote themselves).
    cloud
        .db
        .exec(
            "INSERT INTO org_member (org, account, role) VALUES ($1, $2, $3) \
             ON CONFLICT (org, account) DO UPDATE SET role = \
             CASE WHEN org_member.role = 'admin' THEN 'admin' ELSE excluded.role END",
            vec![org.clone().into(), me.account.into(), role.clone().into()],
        )
        .await?;
    let name = cloud
        .db
        .query_one(
            "SELECT name FROM org WHERE id = $1",
            vec![org.clone().into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?
        .unwrap_or_default();
    Ok(Json(
        serde_json::json!({ "id": org, "name": name, "role": role }),
    ))
}

/// `GET /api/orgs/{org}/members` (org admins): who is in the organisation.
pub(super) async fn members(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let rows = cloud
        .db
        .query(
            "SELECT a.email, m.role FROM org_member m JOIN account a ON a.id = m.account \
             WHERE m.org = $1 ORDER BY a.email",
            vec![org.into()],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| Ok(serde_json::json!({ "email": r.text(0)?, "role": r.text(1)? })))
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(serde_json::json!({ "members": list })))
}

/// Whether removing `account` would leave the organisation without an admin.
async fn last_admin(cloud: &Cloud, org: &str, account: &str) -> ApiResult<bool> {
    let r = cloud
        .db
        .query_one(
            "SELECT (SELECT role FROM org_member WHERE org = $1 AND account = $2), \
             (SELECT COUNT(*) FROM org_member WHERE org = $1 AND role = 'admin')",
            vec![org.into(), account.into()],
        )
        .await?;
    Ok(match r {
        Some(r) => r.opt_text(0)?.as_deref() == Some("admin") && r.int(1)? <= 1,
        None => false,
    })
}

/// `DELETE /api/orgs/{org}/membership`: a member leaves (at once). The
/// last admin can't: the organisation would have no one to run it.
pub(super) async fn leave(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    role(&cloud, &me, &org).await?;
    let _one = MEMBERSHIP.lock().await;
    if last_admin(&cloud, &org, &me.account).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "you are its last admin: make another member admin first",
        ));
    }
    drop_member(&cloud, &org, &me.account).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member, and the invitations they made: an admin who leaves
/// or is removed can't come back with a code made beforehand.
async fn drop_member(cloud: &Cloud, org: &str, account: &str) -> ApiResult<u64> {
    cloud
        .db
        .exec(
            "DELETE FROM org_invite WHERE org = $1 AND made_by = $2",
            vec![org.into(), account.into()],
        )
        .await?;
    Ok(cloud
        .db
        .exec(
            "DELETE FROM org_member WHERE org = $1 AND account = $2",
            vec![org.into(), account.into()],
        )
        .await?)
}

/// `GET /api/orgs/{org}/invites` (org admins): invitations not yet used.
pub(super) async fn invites(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let rows = cloud
        .db
        .query(
            "SELECT i.code, i.role, i.expires, a.email FROM org_invite i \
             LEFT JOIN account a ON a.id = i.made_by WHERE i.org = $1 AND i.expires > $2 ORDER BY i.expires",
            vec![org.into(), now().into()],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| {
            // The code's hash names it: enough to revoke it, useless to join.
            Ok(serde_json::json!({
                "id": r.text(0)?, "role": r.text(1)?, "expires": crate::ts(r.int(2)?),
                "made_by": r.opt_text(3)?,
            }))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(serde_json::json!({ "invites": list })))
}

/// `DELETE /api/orgs/{org}/invites/{id}` (org admins): revokes one.
pub(super) async fn revoke_invite(
    State(cloud): Cl,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let n = cloud
        .db
        .exec(
            "DELETE FROM org_invite WHERE org = $1 AND code = $2",
            vec![org.into(), id.into()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such invitation",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An org admin removes a member (a technician who left): they see the
/// fleet no more, at once.
pub(super) async fn remove_member(
    State(cloud): Cl,
    headers: HeaderMap,
    Path((org, email)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let email = email.trim().to_ascii_lowercase();
    let _one = MEMBERSHIP.lock().await;
    let account = cloud
        .db
        .query_one(
            "SELECT m.account FROM org_member m JOIN account a ON a.id = m.account \
             WHERE m.org = $1 AND a.email = $2",
            vec![org.clone().into(), email.into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?
        .unwrap_or_default();
    if !account.is_empty() && last_admin(&cloud, &org, &account).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "that is the last admin: make another member admin first",
        ));
    }
    let n = drop_member(&cloud, &org, &account).await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such member",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An org admin makes a one-time code an owner enters to link a site.
pub(super) async fn org_code(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let me = me_csrf(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let code = new_code();
    cloud
        .db
        .exec(
            "DELETE FROM link_code WHERE expires <= $1",
            vec![now().into()],
        )
        .await?;
    cloud
        .db
        .exec(
            "INSERT INTO link_code (code, org, expires) VALUES ($1, $2, $3)",
            vec![
                code_hash(&code).into(),
                org.into(),
                (now() + CODE_SECS).into(),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "code": code, "expires": crate::ts(now() + CODE_SECS) })),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkBody {
    code: String,
    level: Option<Level>,
}

/// Takes a code once: its row, deleted in the same statement.
async fn take_code(cloud: &Cloud, code: &str) -> ApiResult<crate::db::Row> {
    cloud
        .db
        .query_one(
            "DELETE FROM link_code WHERE code = $1 AND expires > $2 RETURNING org, site, level",
            vec![code_hash(code).into(), now().into()],
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "bad_code",
                "the code is wrong, used or expired; ask for a new one",
            )
        })
}

async fn link(cloud: &Cloud, site: &str, org: &str, level: Level) -> ApiResult<()> {
    // Whatever codes the site had are spent with this link.
    cloud
        .db
        .exec("DELETE FROM link_code WHERE site = $1", vec![site.into()])
        .await?;
    cloud
        .db
        .exec(
            "INSERT INTO site_link (site, org, level, linked_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site) DO UPDATE SET org = excluded.org, level = excluded.level, linked_at = excluded.linked_at",
            vec![site.into(), org.into(), level.as_str().into(), now().into()],
        )
        .await?;
    Ok(())
}

/// The owner links their site with an organisation's code.
pub(super) async fn link_site(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<LinkBody>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    let r = take_code(&cloud, &b.code).await?;
    let Some(org) = r.opt_text(0)? else {
        return Err(bad("this is a site's code: an installer's admin enters it"));
    };
    // The narrowest level unless the owner says otherwise.
    link(&cloud, &id, &org, b.level.unwrap_or(Level::Online)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LevelBody {
    level: Level,
}

/// The owner makes a one-time code for an installer's admin to enter.
pub(super) async fn site_code(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<LevelBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    let code = new_code();
    // One code per site at a time: a new one ends an older (perhaps
    // given to another installer), so no stale code can move the site.
    cloud
        .db
        .exec(
            "DELETE FROM link_code WHERE site = $1 OR expires <= $2",
            vec![id.clone().into(), now().into()],
        )
        .await?;
    cloud
        .db
        .exec(
            "INSERT INTO link_code (code, site, level, expires) VALUES ($1, $2, $3, $4)",
            vec![
                code_hash(&code).into(),
                id.into(),
                b.level.as_str().into(),
                (now() + CODE_SECS).into(),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "code": code, "expires": crate::ts(now() + CODE_SECS) })),
    ))
}

/// An installer's admin links a site with its owner's code.
pub(super) async fn org_link(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
    Json(b): Json<LinkBody>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    org_admin(&cloud, &me, &org).await?;
    let r = take_code(&cloud, &b.code).await?;
    let (Some(site), Some(level)) = (r.opt_text(1)?, r.opt_text(2)?) else {
        return Err(bad(
            "this is an organisation's code: a site's owner enters it",
        ));
    };
    // An installer can't take a site from another: only its owner re-links.
    let linked = cloud
        .db
        .query_one(
            "SELECT org FROM site_link WHERE site = $1",
            vec![site.clone().into()],
        )
        .await?;
    if linked.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "linked",
            "the site is linked to an installer already; its owner unlinks it first",
        ));
    }
    link(&cloud, &site, &org, Level::parse(&level)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/sites/{id}/link`: the installer the site is linked to, at
/// which level (`link: null` when none).
pub(super) async fn site_link_state(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    let r = cloud
        .db
        .query_one(
            "SELECT o.name, l.level, l.linked_at FROM site_link l JOIN org o ON o.id = l.org WHERE l.site = $1",
            vec![id.into()],
        )
        .await?;
    let link = match r {
        Some(r) => serde_json::json!({
            "org": r.text(0)?, "level": r.text(1)?, "linked_at": crate::ts(r.int(2)?),
        }),
        None => serde_json::Value::Null,
    };
    Ok(Json(serde_json::json!({ "link": link })))
}

/// The owner unlinks (at once: the next fleet request no longer has the
/// site) or changes the level.
pub(super) async fn unlink_site(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    cloud
        .db
        .exec(
            "DELETE FROM site_link WHERE site = $1",
            vec![id.clone().into()],
        )
        .await?;
    cloud
        .db
        .exec("DELETE FROM link_code WHERE site = $1", vec![id.into()])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn link_level(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<LevelBody>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    let n = cloud
        .db
        .exec(
            "UPDATE site_link SET level = $1 WHERE site = $2",
            vec![b.level.as_str().into(), id.into()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_linked",
            "the site is not linked to an installer",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FleetQuery {
    /// Text in the site's name.
    q: Option<String>,
    /// Only sites that need attention.
    attention: Option<bool>,
    /// `attention` (default), `name`, `disk`, `days`, `last_alarm`.
    sort: Option<String>,
}

/// One site as its installer sees it.
#[derive(serde::Serialize)]
pub struct FleetSite {
    id: String,
    name: String,
    level: Level,
    online: bool,
    since: String,
    software: Option<String>,
    cameras: Option<usize>,
    cameras_down: Option<Vec<String>>,
    disk_used_percent: Option<f64>,
    footage_days: Option<f64>,
    /// The owner's target (`[storage] target_days`), when set.
    footage_target_days: Option<f64>,
    /// Trouble with the remote-access certificate, in words.
    certificate: Option<String>,
    /// Cameras streaming whose footage isn't being written.
    not_recording: Option<Vec<String>>,
    last_alarm: Option<String>,
    /// Why it needs attention, in words; empty when it doesn't.
    attention: Vec<String>,
    /// The caller's own grant there, as the recorder reported it (a
    /// mirror, for the technician's convenience: the recorder decides).
    my_access: Option<MyAccess>,
    remote: Option<String>,
}

#[derive(serde::Serialize)]
pub struct MyAccess {
    scopes: Vec<String>,
    until: String,
}

/// Disk use from which a site needs attention.
pub const DISK_NEARLY_FULL: f64 = 90.0;

/// `GET /api/orgs/{org}/fleet`: the organisation's linked sites, each at
/// the level its owner chose (and the site shares), with why it needs
/// attention; filtered and sorted.
pub(super) async fn fleet(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(org): Path<String>,
    q: Query<FleetQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    role(&cloud, &me, &org).await?;
    let rows = cloud
        .db
        .query(
            "SELECT s.id, s.name, l.level, s.sharing, s.online, s.since, s.status, s.software, \
             (SELECT MAX(a.received) FROM alarm a WHERE a.site = s.id), \
             (SELECT g.expires FROM site_grant g WHERE g.site = s.id AND g.technician = $2 AND g.expires > $3 \
              AND g.org = o.name ORDER BY g.expires DESC LIMIT 1), \
             (SELECT g.scopes FROM site_grant g WHERE g.site = s.id AND g.technician = $2 AND g.expires > $3 \
              AND g.org = o.name ORDER BY g.expires DESC LIMIT 1), \
             s.label, s.remote, s.paired_at \
             FROM site_link l JOIN site s ON s.id = l.site JOIN org o ON o.id = l.org WHERE l.org = $1",
            vec![org.into(), me.email.as_str().into(), crate::now().into()],
        )
        .await?;
    let needle = q.q.as_deref().unwrap_or("").to_lowercase();
    let mut list = Vec::with_capacity(rows.len());
    for r in &rows {
        let name = r.text(1)?;
        if !needle.is_empty() && !name.to_lowercase().contains(&needle) {
            continue;
        }
        // The site's own sharing caps what its installer sees.
        let shares_health = r.text(3)? != "online_only";
        let level = match Level::parse(&r.text(2)?) {
            Level::Health if shares_health => Level::Health,
            _ => Level::Online,
        };
        let online = r.int(4)? != 0;
        let status: Option<serde_json::Value> =
            r.opt_text(6)?.and_then(|s| serde_json::from_str(&s).ok());
        let health = status.filter(|_| level == Level::Health);
        let cams = health
            .as_ref()
            .and_then(|s| s.get("cameras"))
            .and_then(|c| c.as_array());
        let down: Option<Vec<String>> = cams.map(|c| {
            c.iter()
                .filter(|c| c.get("streaming") != Some(&serde_json::Value::Bool(true)))
                .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                .collect()
        });
        let num = |k: &str| {
            health
                .as_ref()
                .and_then(|s| s.get(k))
                .and_then(|v| v.as_f64())
        };
        let disk = num("disk_used_percent");
        // Streaming but not recording: the recorder's writes are failing.
        let failing: Option<Vec<String>> = cams.map(|c| {
            c.iter()
                .filter(|c| {
                    c.get("streaming") == Some(&serde_json::Value::Bool(true))
                        && c.get("recording") != Some(&serde_json::Value::Bool(true))
                })
                .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                .collect()
        });
        let target = num("footage_target_days");
        let days = num("footage_days");
        let certificate = health
            .as_ref()
            .and_then(|s| s.get("certificate"))
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        let mut attention = Vec::new();
        if !online {
            attention.push("offline".to_owned());
        }
        if let Some(d) = down.as_ref().filter(|d| !d.is_empty()) {
            attention.push(format!("cameras down: {}", d.join(", ")));
        }
        if let Some(f) = failing.as_ref().filter(|f| !f.is_empty()) {
            attention.push(format!("not recording (write errors): {}", f.join(", ")));
        }
        if let Some(d) = disk.filter(|d| *d >= DISK_NEARLY_FULL) {
            attention.push(format!("disk {d:.0}% full"));
        }
        // Short of the owner's target only once the site has been with the
        // cloud that long: a new site can't have a month of footage yet.
        let paired_days = (crate::now() - r.int(13)?) as f64 / 86_400.0;
        if let (Some(t), Some(d)) = (target, days)
            && d < t
            && paired_days >= t
        {
            attention.push(format!("footage {d:.1} of {t:.0} days"));
        }
        if let Some(c) = &certificate {
            attention.push(format!("certificate: {c}"));
        }
        list.push(FleetSite {
            id: r.text(0)?,
            name,
            level,
            online,
            since: crate::ts(r.int(5)?),
            software: r.opt_text(7)?,
            cameras: cams.map(Vec::len),
            cameras_down: down,
            disk_used_percent: disk,
            footage_days: days,
            footage_target_days: target,
            certificate,
            not_recording: failing,
            last_alarm: if level == Level::Health {
                r.opt_int(8)?.map(crate::ts)
            } else {
                None
            },
            attention,
            // Where the recorder's own web app opens through the relay,
            // when its owner switched remote access on: a technician signs
            // in there with the credential the owner's grant gave them.
            // Only for a member the owner granted access: the others have
            // nothing to sign in with there.
            remote: crate::remote_url(&cloud.config, r.opt_text(11)?, r.int(12)? != 0)
                .filter(|_| online && r.opt_int(9).ok().flatten().is_some()),
            my_access: match (r.opt_int(9)?, r.opt_text(10)?) {
                (Some(until), Some(scopes)) => Some(MyAccess {
                    scopes: scopes.split(',').map(str::to_owned).collect(),
                    until: crate::ts(until),
                }),
                _ => None,
            },
        });
    }
    if q.attention == Some(true) {
        list.retain(|s| !s.attention.is_empty());
    }
    let key = |s: &FleetSite| s.name.to_lowercase();
    match q.sort.as_deref().unwrap_or("attention") {
        "name" => list.sort_by_key(key),
        "disk" => list.sort_by(|a, b| {
            b.disk_used_percent
                .partial_cmp(&a.disk_used_percent)
                .unwrap_or(std::cmp::Ordering::Equal)
        }),
        "days" => list.sort_by(|a, b| {
            a.footage_days
                .partial_cmp(&b.footage_days)
                .unwrap_or(std::cmp::Ordering::Equal)
        }),
        "last_alarm" => list.sort_by(|a, b| b.last_alarm.cmp(&a.last_alarm)),
        _ => list.sort_by(|a, b| {
            b.attention
                .len()
                .cmp(&a.attention.len())
                .then_with(|| key(a).cmp(&key(b)))
        }),
    }
    let needing = list.iter().filter(|s| !s.attention.is_empty()).count();
    Ok(Json(serde_json::json!({
        "sites": list,
        "total": rows.len(),
        "needing_attention": needing,
    })))
}

/// A member asks one site at most this often (the recorder keeps one
/// waiting request per technician anyway).
pub const REQUEST_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `account` may ask `site` now; records the ask.
fn paced(account: &str, site: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<HashMap<(String, String), Instant>>> = Mutex::new(None);
    let mut m = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let m = m.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    if m.len() > 100_000 {
        m.retain(|_, t| now.duration_since(*t) < REQUEST_EVERY);
    }
    let key = (account.to_owned(), site.to_owned());
    match m.get(&key) {
        Some(t) if now.duration_since(*t) < REQUEST_EVERY => false,
        _ => {
            m.insert(key, now);
            true
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessBody {
    scopes: Vec<String>,
    cameras: Option<Vec<String>>,
    hours: u32,
    #[serde(default)]
    reason: String,
}

/// `POST /api/orgs/{org}/sites/{site}/access-requests`: a member asks a
/// linked site's recorder for access. Relayed as a request only: the
/// recorder's admin grants it (or not) on the recorder, where the member
/// then signs in with their own credential; the cloud never holds one.
pub(super) async fn request_access(
    State(cloud): Cl,
    headers: HeaderMap,
    Path((org, site)): Path<(String, String)>,
    Json(b): Json<AccessBody>,
) -> ApiResult<(StatusCode, Json<candor_wire::cloud::Said>)> {
    let me = me_csrf(&cloud, &headers).await?;
    role(&cloud, &me, &org).await?;
    let org_name = cloud
        .db
        .query_one(
            "SELECT o.name FROM site_link l JOIN org o ON o.id = l.org WHERE l.site = $1 AND l.org = $2",
            vec![site.clone().into(), org.into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such site"))?;
    let m = candor_link::Message::AccessRequest {
        technician: me.email.clone(),
        org: org_name,
        scopes: b.scopes,
        cameras: b.cameras,
        hours: b.hours,
        reason: b.reason,
    };
    m.validate()
        .map_err(|e| bad(format!("access request: {e}")))?;
    if !paced(&me.account, &site) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many",
            format!("one request per site every {} s", REQUEST_EVERY.as_secs()),
        ));
    }
    let tx = cloud
        .online
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&site)
        .map(|o| o.tx.clone());
    let Some(tx) = tx else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offline",
            "the recorder is offline; ask its owner",
        ));
    };
    if tx.try_send(m).is_err() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the recorder's link is busy; try again in a minute",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(candor_wire::cloud::Said {
            message: "asked the recorder: its owner decides there (Access page)".into(),
        }),
    ))
}
