//! The fleet view at scale: 10,000 sites (each with a status as recorders
//! send it, and a few alarms), one installer organisation with 1,000 of
//! them linked, and the time `GET /api/orgs/{org}/fleet` takes, through
//! the cloud's own router (handler, database, JSON; no TLS or network).
//!
//! ```text
//! cargo run --release -p candor-cloud --example fleet_bench -- sqlite
//! cargo run --release -p candor-cloud --example fleet_bench -- postgres://postgres@127.0.0.1/candor_fleet
//! ```
//! Prints one JSON object: p50, p99 and max in ms over 200 requests, per
//! query (the default attention sort, a name filter, `attention=true`).
//! See bench/fleet.sh.

use candor_cloud::{Cloud, Config};
use std::time::Instant;
use tower::ServiceExt;

const SITES: usize = 10_000;
const LINKED: usize = 1_000;
const REQUESTS: usize = 200;

fn hash(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = std::env::args().nth(1).unwrap_or_else(|| "sqlite".into());
    let dir = tempfile::tempdir().unwrap();
    let database = if db == "sqlite" {
        String::new()
    } else {
        format!("database = \"{db}\"\n")
    };
    let cfg: Config = toml::from_str(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{database}",
        dir.path().join("data").display()
    ))
    .unwrap();
    let cloud = Cloud::open(cfg).await.unwrap();
    let d = &cloud.db;
    let t = Instant::now();
    let now = 1_764_000_000i64;
    // Owners (100), sites, their status, alarms; one org with a technician.
    for o in 0..100 {
        d.exec(
            "INSERT INTO account (id, email, password, created) VALUES ($1, $2, 'x', $3)",
            vec![
                format!("owner{o}").into(),
                format!("owner{o}@example.com").into(),
                now.into(),
            ],
        )
        .await
        .unwrap();
    }
    d.exec(
        "INSERT INTO account (id, email, password, created) VALUES ('tech', 'tech@acme.example', 'x', $1)",
        vec![now.into()],
    )
    .await
    .unwrap();
    d.exec(
        "INSERT INTO org (id, name, created) VALUES ('acme', 'ACME', $1)",
        vec![now.into()],
    )
    .await
    .unwrap();
    d.exec(
        "INSERT INTO org_member (org, account, role) VALUES ('acme', 'tech', 'technician')",
        vec![],
    )
    .await
    .unwrap();
    // 500 rows per statement: one statement per site would take minutes
    // of PostgreSQL round trips.
    for chunk in (0..SITES).collect::<Vec<_>>().chunks(500) {
        let mut sql = String::from(
            "INSERT INTO site (id, account, name, pubkey, sharing, paired_at, online, since, status, software) VALUES ",
        );
        let mut params: Vec<candor_cloud::db::Val> = Vec::new();
        for (n, i) in chunk.iter().enumerate() {
            let cams: Vec<_> = (0..8)
                .map(|c| serde_json::json!({"name": format!("cam{c}"), "streaming": (i + c) % 37 != 0, "recording": true}))
                .collect();
            let status = serde_json::json!({
                "seq": 1, "cameras": cams, "disk_used_percent": (i % 100) as f64,
                "footage_days": (i % 40) as f64, "last_event_at": null, "at": "2026-12-01T00:00:00Z",
            });
            let b = n * 8;
            sql += &format!(
                "{}(${}, ${}, ${}, ${}, 'health', ${}, ${}, ${}, ${}, 'candor 0.1')",
                if n > 0 { ", " } else { "" },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8
            );
            params.extend([
                format!("site{i:05}").into(),
                format!("owner{}", i % 100).into(),
                format!("Site {i:05}").into(),
                candor_cloud::db::Val::Bytes(format!("key{i}").into_bytes()),
                now.into(),
                i64::from(i % 20 != 0).into(),
                now.into(),
                status.to_string().into(),
            ]);
        }
        d.exec(&sql, params).await.unwrap();
    }
    for i in 0..LINKED {
        let site = format!("site{:05}", i * (SITES / LINKED));
        d.exec(
            "INSERT INTO site_link (site, org, level, linked_at) VALUES ($1, 'acme', 'health', $2)",
            vec![site.clone().into(), now.into()],
        )
        .await
        .unwrap();
        for a in 0..3 {
            d.exec(
                "INSERT INTO alarm (site, id, at, received, late) VALUES ($1, $2, '2026-12-01T00:00:00Z', $3, 0)",
                vec![site.clone().into(), a.into(), (now + a).into()],
            )
            .await
            .unwrap();
        }
        // Each site's recorder reported two grants (the technician's on a
        // tenth of them), which the fleet looks up per site.
        for g in 0..2i64 {
            let who = if g == 0 && i % 10 == 0 {
                "tech@acme.example".to_owned()
            } else {
                format!("other{g}@acme.example")
            };
            d.exec(
                "INSERT INTO site_grant (site, id, technician, org, scopes, expires) VALUES ($1, $2, $3, 'ACME', 'config', $4)",
                vec![site.clone().into(), g.into(), who.into(), (candor_cloud::now() + 3600).into()],
            )
            .await
            .unwrap();
        }
    }
    let session = "bench-session";
    d.exec(
        "INSERT INTO session (id, account, csrf, expires) VALUES ($1, 'tech', 'c', $2)",
        vec![hash(session).into(), (now * 2).into()],
    )
    .await
    .unwrap();
    let seeded = t.elapsed();
    let app = candor_cloud::api::router(cloud.clone());
    let mut out = serde_json::Map::new();
    out.insert("database".into(), d.kind().into());
    out.insert("sites".into(), SITES.into());
    out.insert("linked".into(), LINKED.into());
    out.insert("seed_secs".into(), seeded.as_secs_f64().into());
    for (name, q) in [
        ("default", ""),
        ("filter", "?q=site%2000"),
        ("attention", "?attention=true&sort=disk"),
    ] {
        let mut ms = Vec::with_capacity(REQUESTS);
        let mut count = 0;
        let mut granted = 0;
        for _ in 0..REQUESTS {
            let req = http::Request::get(format!("/api/orgs/acme/fleet{q}"))
                .header("cookie", format!("__Host-candor_cloud={session}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let t = Instant::now();
            let r = app.clone().oneshot(req).await.unwrap();
            assert_eq!(r.status(), 200);
            let body = http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            count = v["sites"].as_array().unwrap().len();
            granted = v["sites"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| !s["my_access"].is_null())
                .count();
        }
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        out.insert(
            name.into(),
            serde_json::json!({
                "sites_returned": count,
                "with_my_access": granted,
                "p50_ms": (p(0.50) * 100.0).round() / 100.0,
                "p99_ms": (p(0.99) * 100.0).round() / 100.0,
                "max_ms": (ms[ms.len() - 1] * 100.0).round() / 100.0,
            }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
}
