//! `/api/v1/openapi.json`, built from the route table ([`crate::routes`]),
//! so it lists exactly the routes the server has, with who may call them.

use crate::{Access, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::response::IntoResponse;

/// Query parameters per path, documented where the handler reads them.
fn query_params(path: &str, method: &Method) -> Vec<(&'static str, &'static str, bool)> {
    match (path, method.as_str()) {
        ("/api/v1/cameras/{name}/spans", _) => vec![
            (
                "from",
                "Start, RFC 3339 (default: 31 days before `to`; the range is at most 31 days)",
                false,
            ),
            ("to", "End, RFC 3339 (default: now)", false),
        ],
        ("/api/v1/cameras/{name}/export.mp4", _) => vec![
            ("from", "Start, RFC 3339", true),
            ("to", "End, RFC 3339 (at most 24 h after `from`)", true),
            ("download", "1: Content-Disposition attachment", false),
        ],
        ("/api/v1/audit", _) => vec![
            ("user", "Only this user", false),
            (
                "action",
                "An action, or a prefix ending in * (login*)",
                false,
            ),
            ("since", "Unix seconds, inclusive", false),
            ("until", "Unix seconds, exclusive", false),
            (
                "limit",
                "At most this many entries, newest first (default 1000)",
                false,
            ),
            ("format", "json (default) or csv", false),
        ],
        _ => vec![],
    }
}

pub fn document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = candor_wire::schema::responses();
    let error = candor_wire::schema::of::<candor_wire::Error>(&mut schemas);
    for r in crate::routes() {
        if !r.path.starts_with("/api/") && r.path != "/metrics" {
            continue; // the web app's files are not API
        }
        let mut params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| serde_json::json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        for (name, desc, required) in query_params(r.path, &r.method) {
            params.push(serde_json::json!({ "name": name, "in": "query", "required": required, "description": desc, "schema": { "type": "string" } }));
        }
        let mut op = serde_json::json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "4XX": { "description": "Client error (429 `locked_out` / `too_many_exports` carry Retry-After)", "content": { "application/json": { "schema": error } } },
                "503": { "description": "Busy (`busy`: too many password checks at once; Retry-After)", "content": { "application/json": { "schema": error } } },
            },
        });
        let success = match r.reply {
            Some((status, schema)) => {
                let mut content =
                    serde_json::json!({ "application/json": { "schema": schema(&mut schemas) } });
                if r.path == "/api/v1/egress" || r.path == "/api/v1/audit" {
                    content["text/csv"] = serde_json::json!({ "schema": { "type": "string" } });
                }
                (
                    status.to_string(),
                    serde_json::json!({ "description": "Success", "content": content }),
                )
            }
            None => (
                "200".to_owned(),
                serde_json::json!({ "description": "Success" }),
            ),
        };
        op["responses"][success.0] = success.1;
        match r.access {
            Access::Public => op["security"] = serde_json::json!([]),
            Access::Role(role) => {
                op["x-candor-min-role"] = serde_json::json!(role.as_str());
                op["description"] = serde_json::json!(format!(
                    "Requires the {} role or higher. Callers limited to some cameras see only theirs.",
                    role.as_str()
                ));
            }
            Access::Site(role) => {
                op["x-candor-min-role"] = serde_json::json!(role.as_str());
                op["x-candor-whole-site"] = serde_json::json!(true);
                op["description"] = serde_json::json!(format!(
                    "Requires the {} role or higher, with access to every camera (403 `scoped` otherwise).",
                    role.as_str()
                ));
            }
        }
        if matches!(r.method, Method::POST | Method::PATCH | Method::DELETE) {
            op["requestBody"] = serde_json::json!({ "required": false, "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| serde_json::json!({}))[r.method.as_str().to_ascii_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Candor recorder API",
            "version": candor_wire::version(),
            "description": format!(
                "Limits: request bodies at most {} bytes, sent within 10 s (413 `too_large`, 408 `slow_body`); \
                 login attempts are counted before checking (429 `locked_out` with Retry-After after 5 failures per user \
                 name or address in 15 min; browsers with a device cookie count on their own); password checks run a few \
                 at a time (503 `busy` with Retry-After); one export covers at most 24 h and one spans request 31 days \
                 (400 `range_too_long`); at most {} exports per user at once (429 `too_many_exports`). \
                 Callers limited to some cameras see only those; routes marked x-candor-whole-site refuse them (403 `scoped`).",
                crate::MAX_BODY,
                crate::footage::MAX_EXPORTS_PER_USER
            ),
        },
        "paths": paths,
        "security": [ { "session": [] }, { "token": [] } ],
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE,
                             "description": "From POST /api/v1/login; state changes also need the X-CSRF-Token header" },
                "token": { "type": "http", "scheme": "bearer", "description": "An API token (cnd_…) from POST /api/v1/tokens" },
            },
            "schemas": schemas.take_definitions(true),
        },
    })
}

pub async fn openapi(State(_st): State<AppState>, _: Caller) -> ApiResult {
    Ok(Json(document()).into_response())
}
