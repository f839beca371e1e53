//! Users, sessions, API tokens and the audit log.
//!
//! Admins manage everyone; other users see and revoke only their own
//! sessions and tokens, and may not issue a token with more than their role.

use crate::accounts::{AuditQuery, Role};
use crate::{ApiError, ApiResult, AppState, Caller, body};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

fn role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s)
        .ok_or_else(|| ApiError::bad_request("invalid", "role must be admin, operator or viewer"))
}

pub async fn users(State(st): State<AppState>, _: Caller) -> ApiResult {
    Ok(Json(candor_wire::UserList {
        users: st.accounts.users()?,
    })
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    role: String,
    /// Omitted: none (an admin adds them later); `null`: every camera.
    /// Admins always see every camera.
    #[serde(default, deserialize_with = "some")]
    cameras: Option<Option<Vec<String>>>,
}

pub async fn create_user(
    State(st): State<AppState>,
    Caller(p): Caller,
    b: Result<Json<NewUser>, JsonRejection>,
) -> ApiResult {
    let u = body(b)?;
    let r = role(&u.role)?;
    let accounts = st.accounts.clone();
    let name = u.name.clone();
    // Least privilege: a new user sees no camera until one is granted.
    let cams: Option<Vec<String>> = match r {
        Role::Admin => None,
        _ => u.cameras.unwrap_or(Some(Vec::new())),
    };
    let c2 = cams.clone();
    let _slot = crate::session_api::hash_slot(&st).await?;
    tokio::task::spawn_blocking(move || {
        accounts.add_user_scoped(&u.name, r, &u.password, c2.as_deref())
    })
    .await??;
    st.audit(
        Some(&p.username),
        "user_created",
        format!(
            "{name} as {} (cameras: {})",
            r.as_str(),
            scope(cams.as_deref())
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(candor_wire::Created { name })).into_response())
}

fn scope(c: Option<&[String]>) -> String {
    c.map_or("all".into(), |c| c.join(","))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    role: Option<String>,
    /// `null` here means "every camera"; leave the key out to keep the list.
    #[serde(default, deserialize_with = "some")]
    cameras: Option<Option<Vec<String>>>,
    password: Option<String>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

pub async fn update_user(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    b: Result<Json<UserChange>, JsonRejection>,
) -> ApiResult {
    let c = body(b)?;
    // One's own password changes only with the current one (POST
    // /api/v1/me/password), so a stolen admin session cannot lock its
    // owner out.
    if c.password.is_some() && name == p.username {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "current_password_required",
            "change your own password on your account page (POST /api/v1/me/password); it needs the current one",
        ));
    }
    let r = c.role.as_deref().map(role).transpose()?;
    let _slot = match c.password {
        Some(_) => Some(crate::session_api::hash_slot(&st).await?),
        None => None,
    };
    let accounts = st.accounts.clone();
    let n = name.clone();
    let detail = format!(
        "{name}:{}{}{}",
        r.map_or(String::new(), |r| format!(" role={}", r.as_str())),
        c.cameras.as_ref().map_or(String::new(), |c| format!(
            " cameras={}",
            scope(c.as_deref())
        )),
        if c.password.is_some() {
            " password changed"
        } else {
            ""
        }
    );
    tokio::task::spawn_blocking(move || {
        accounts.update_user(
            &n,
            r,
            c.cameras.as_ref().map(|c| c.as_deref()),
            c.password.as_deref(),
        )
    })
    .await??;
    st.audit(Some(&p.username), "user_changed", detail.to_string())
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_user(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult {
    st.accounts.delete_user(&name)?;
    st.audit(Some(&p.username), "user_deleted", name.to_string())
        .await;
    // A technician's grants went with them: the cloud's mirror follows.
    crate::grants_api::report_grants(&st).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Admins who see the whole site act on everyone's; others (a camera-scoped
/// admin token too) on their own only.
fn owner(p: &crate::Principal) -> Option<&str> {
    (p.role != Role::Admin || !p.whole_site()).then_some(p.username.as_str())
}

/// The sessions and tokens a caller may see and revoke: its own (all, for
/// a whole-site admin), minus anything broader than itself. A token limited
/// to some cameras sees no sessions (a session of its user may see every
/// camera) and only tokens within its own cameras, so it can neither learn
/// other cameras' names from their lists nor revoke a wider credential.
fn visible_sessions(
    st: &AppState,
    p: &crate::Principal,
) -> Result<Vec<crate::accounts::SessionInfo>, ApiError> {
    let list = st.accounts.sessions(owner(p))?;
    Ok(match p.via {
        crate::Via::Token { .. } if !p.whole_site() => Vec::new(),
        _ => list,
    })
}

fn visible_tokens(
    st: &AppState,
    p: &crate::Principal,
) -> Result<Vec<crate::accounts::TokenInfo>, ApiError> {
    let list = st.accounts.tokens(owner(p))?;
    Ok(if p.whole_site() {
        list
    } else {
        list.into_iter()
            .filter(|t| {
                t.cameras
                    .as_ref()
                    .is_some_and(|c| c.iter().all(|n| p.may_see(n)))
            })
            .collect()
    })
}

pub async fn sessions(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let list = visible_sessions(&st, &p)?;
    Ok(Json(candor_wire::SessionList {
        sessions: list,
        current: p.session_row(),
    })
    .into_response())
}

pub async fn revoke_session(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<i64>,
) -> ApiResult {
    if !visible_sessions(&st, &p)?.iter().any(|s| s.id == id)
        || !st.accounts.revoke_session(id, owner(&p))?
    {
        return Err(ApiError::not_found(format!("no session {id}")));
    }
    st.audit(
        Some(&p.username),
        "session_revoked",
        format!("session {id}"),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn tokens(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    Ok(Json(candor_wire::TokenList {
        tokens: visible_tokens(&st, &p)?,
    })
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    /// At most the caller's role; defaults to it.
    role: Option<String>,
    /// A subset of the caller's cameras; omitted: the caller's.
    cameras: Option<Vec<String>>,
}

pub async fn create_token(
    State(st): State<AppState>,
    Caller(p): Caller,
    b: Result<Json<NewToken>, JsonRejection>,
) -> ApiResult {
    if matches!(p.via, crate::Via::Token { .. }) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "API tokens cannot create tokens; log in",
        ));
    }
    let t = body(b)?;
    let r = t.role.as_deref().map(role).transpose()?.unwrap_or(p.role);
    if !p.role.at_least(r) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a token cannot have a higher role than its user",
        ));
    }
    let cams = crate::accounts::narrow(p.cameras.as_deref(), t.cameras.as_deref());
    let (id, token) = st
        .accounts
        .create_token(&p.username, &t.name, r, cams.as_deref())?;
    st.audit(
        Some(&p.username),
        "token_created",
        format!(
            "{} (id {id}, {}, cameras: {})",
            t.name,
            r.as_str(),
            scope(cams.as_deref())
        ),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(candor_wire::NewToken {
            id,
            token,
            role: r.as_str().into(),
            cameras: cams,
        }),
    )
        .into_response())
}

pub async fn revoke_token(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<i64>,
) -> ApiResult {
    if !visible_tokens(&st, &p)?.iter().any(|t| t.id == id)
        || !st.accounts.revoke_token(id, owner(&p))?
    {
        return Err(ApiError::not_found(format!("no token {id}")));
    }
    st.audit(Some(&p.username), "token_revoked", format!("id {id}"))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn audit(
    State(st): State<AppState>,
    _: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let rows = st.accounts.audit_query(&q)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(candor_wire::AuditList { entries: rows }).into_response()),
        Some("csv") => {
            let mut out = String::from("time,user,action,detail\r\n");
            for e in &rows {
                let at = crate::rfc3339(e.at);
                out.push_str(&format!(
                    "{},{},{},{}\r\n",
                    csv(&at),
                    csv(e.user.as_deref().unwrap_or("")),
                    csv(&e.action),
                    csv(&e.detail)
                ));
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"candor-audit.csv\"",
                    ),
                ],
                out,
            )
                .into_response())
        }
        Some(_) => Err(ApiError::bad_request(
            "bad_query",
            "format must be json or csv",
        )),
    }
}

/// One CSV field (RFC 4180). A leading `=`, `+`, `-`, `@`, tab or carriage
/// return is prefixed with `'` so a spreadsheet never runs a user name as a
/// formula (OWASP's CSV injection list).
pub fn csv(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_that_a_spreadsheet_would_run_are_neutralized() {
        for v in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            let f = super::csv(v);
            assert!(f.trim_start_matches('"').starts_with('\''), "{v:?}: {f:?}");
        }
        assert_eq!(super::csv("plain"), "plain");
        assert_eq!(super::csv("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
