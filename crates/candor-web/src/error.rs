//! The API's errors: one type, [`ApiError`], whose body is
//! [`candor_wire::Error`] (`{"code", "message"}`), with a stable code that
//! programs branch on.

use crate::accounts::AccountError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer: JSON with a stable `code` for programs and a `message`
/// for people that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// Logs the cause; the client learns only that it was on our side.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!("request failed: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the recorder's log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = candor_wire::Error {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> ApiError {
        use AccountError::*;
        let (status, code) = match &e {
            BadName | WeakPassword | BadCameras(_) => (StatusCode::BAD_REQUEST, "invalid"),
            Exists(_) => (StatusCode::CONFLICT, "exists"),
            BadToken => (StatusCode::FORBIDDEN, "bad_token"),
            SetupClosed => (StatusCode::CONFLICT, "setup_closed"),
            NoUser(_) => (StatusCode::NOT_FOUND, "not_found"),
            Technician(_) => (StatusCode::CONFLICT, "technician"),
            LastAdmin => (StatusCode::CONFLICT, "last_admin"),
            BadCode => (StatusCode::BAD_REQUEST, "bad_code"),
            NoPendingTotp => (StatusCode::CONFLICT, "no_pending_totp"),
            TooMany(..) => (StatusCode::CONFLICT, "too_many"),
            Db(_) | Io(_) | Hash(_) | SchemaVersion(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::accounts::grants::GrantError> for ApiError {
    fn from(e: crate::accounts::grants::GrantError) -> ApiError {
        use crate::accounts::grants::GrantError::*;
        let e = match e {
            Account(a) => return a.into(),
            e => e,
        };
        let (status, code) = match &e {
            Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            NotTechnician(_) => (StatusCode::CONFLICT, "exists"),
            NotFound => (StatusCode::NOT_FOUND, "not_found"),
            BadEnrolment => (StatusCode::FORBIDDEN, "bad_enrolment"),
            TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
            Account(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e)
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// The JSON body of a request, or a 400 that says what is wrong with it.
pub(crate) fn body<T>(
    b: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request("bad_request", e.body_text()))
}
