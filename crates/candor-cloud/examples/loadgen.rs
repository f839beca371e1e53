//! Load generator for `candor cloud`: simulated recorders speaking the real
//! link protocol (own Ed25519 keys, TLS 1.3, pairing through the owner API,
//! heartbeats, alarms), and one owner's WebSocket measuring when each alarm
//! reaches the app. Bounded: `--recorders` connections, `--hold` seconds.
//!
//! ```text
//! cargo run --release -p candor-cloud --example loadgen -- \
//!     --addr 127.0.0.1:8443 --ca cloud-data/tls/cert.pem --recorders 100 \
//!     --alarms 1000 --rate 200 --hold 10 --pid <cloud pid>
//! ```
//! Prints one JSON object. See bench/cloud_load.sh.

use candor_link::identity::Identity;
use candor_link::{Decoder, Frame, Message, Sharing};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Args {
    addr: String,
    ca: String,
    recorders: usize,
    alarms: usize,
    rate: f64,
    hold: u64,
    pid: Option<u32>,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8443".into(),
        ca: "cloud-data/tls/cert.pem".into(),
        recorders: 100,
        alarms: 1000,
        rate: 200.0,
        hold: 10,
        pid: None,
        concurrency: 32,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for p in v.chunks(2) {
        let val = p.get(1).cloned().unwrap_or_default();
        match p[0].as_str() {
            "--addr" => a.addr = val,
            "--ca" => a.ca = val,
            "--recorders" => a.recorders = val.parse().expect("--recorders N"),
            "--alarms" => a.alarms = val.parse().expect("--alarms N"),
            "--rate" => a.rate = val.parse().expect("--rate per second"),
            "--hold" => a.hold = val.parse().expect("--hold seconds"),
            "--pid" => a.pid = Some(val.parse().expect("--pid")),
            "--concurrency" => a.concurrency = val.parse().expect("--concurrency"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn roots(ca: &str) -> rustls::RootCertStore {
    let mut r = rustls::RootCertStore::empty();
    let f = std::fs::File::open(ca).expect("--ca file");
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
        r.add(c.unwrap()).unwrap();
    }
    r
}

fn server_name(addr: &str) -> rustls::pki_types::ServerName<'static> {
    let host = addr.rsplit_once(':').unwrap().0.to_string();
    rustls::pki_types::ServerName::try_from(host).unwrap()
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn https(cfg: &Arc<rustls::ClientConfig>, addr: &str) -> Tls {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(server_name(addr), tcp)
        .await
        .unwrap()
}

/// One HTTP/1.1 request with `Connection: close`; (status, headers, body).
async fn http(
    cfg: &Arc<rustls::ClientConfig>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = https(cfg, addr).await;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

async fn send(s: &mut Tls, m: &Message) {
    s.write_all(&candor_link::encode(&Frame::Control(m.clone())).unwrap())
        .await
        .unwrap();
}

async fn recv(s: &mut Tls, d: &mut Decoder, buf: &mut [u8]) -> Option<Message> {
    loop {
        if let Ok(Some(Frame::Control(m))) = d.next_frame() {
            return Some(m);
        }
        let n = s.read(buf).await.ok()?;
        if n == 0 {
            return None;
        }
        d.push(&buf[..n]);
    }
}

struct Owner {
    cookie: String,
    csrf: String,
}

/// Pairs one simulated recorder through the real protocol and the owner
/// API; returns its key and site id.
async fn pair(
    http_cfg: &Arc<rustls::ClientConfig>,
    addr: &str,
    owner: &Owner,
    n: usize,
) -> (Vec<u8>, String) {
    let pkcs8 = Identity::generate().unwrap();
    let id = Identity::from_pkcs8(&pkcs8).unwrap();
    let cfg = Arc::new(id.client_config(roots_of(http_cfg)).unwrap());
    let mut s = https(&cfg, addr).await;
    let (mut d, mut buf) = (Decoder::new(), vec![0u8; 4096]);
    send(
        &mut s,
        &Message::PairStart {
            name: format!("sim {n}"),
        },
    )
    .await;
    let Some(Message::PairCode { code, .. }) = recv(&mut s, &mut d, &mut buf).await else {
        panic!("no pairing code");
    };
    let (st, _, body) = http(
        http_cfg,
        addr,
        "POST",
        "/api/pair",
        &format!(
            "Cookie: {}\r\nX-CSRF-Token: {}\r\n",
            owner.cookie, owner.csrf
        ),
        &serde_json::json!({ "code": code }).to_string(),
    )
    .await;
    assert_eq!(st, 200, "pair: {body}");
    let Some(Message::PairClaimed { account, nonce }) = recv(&mut s, &mut d, &mut buf).await else {
        panic!("no claim");
    };
    let confirmation = candor_link::confirmation(&code, id.public_key(), &account, &nonce);
    send(&mut s, &Message::PairConfirm { confirmation }).await;
    let Some(Message::Paired { site }) = recv(&mut s, &mut d, &mut buf).await else {
        panic!("not paired");
    };
    (pkcs8, site)
}

fn roots_of(_: &Arc<rustls::ClientConfig>) -> rustls::RootCertStore {
    roots(&ARGS_CA.lock().unwrap().clone())
}

static ARGS_CA: Mutex<String> = Mutex::new(String::new());

/// A paired recorder's session: hello, one status, pongs, alarms on demand.
async fn run_site(
    pkcs8: Vec<u8>,
    addr: String,
    site: String,
    mut alarms: mpsc::Receiver<Message>,
    up: Arc<std::sync::atomic::AtomicUsize>,
) {
    let id = Identity::from_pkcs8(&pkcs8).unwrap();
    let cfg = Arc::new(
        id.client_config(roots(&ARGS_CA.lock().unwrap().clone()))
            .unwrap(),
    );
    let mut s = https(&cfg, &addr).await;
    let (mut d, mut buf) = (Decoder::new(), vec![0u8; 2048]);
    send(
        &mut s,
        &Message::Hello {
            proto: 1,
            software: "loadgen".into(),
            sharing: Sharing::HealthAndEvents,
            remote: false,
        },
    )
    .await;
    match recv(&mut s, &mut d, &mut buf).await {
        Some(Message::Welcome { site: w }) if w == site => {}
        other => panic!("no welcome: {other:?}"),
    }
    up.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    send(
        &mut s,
        &Message::Status {
            seq: 1,
            cameras: Some(vec![candor_link::CameraHealth {
                name: "cam".into(),
                streaming: true,
                recording: true,
            }]),
            disk_used_percent: Some(40.0),
            footage_days: Some(14.0),
            last_event_at: None,
            footage_target_days: None,
            certificate: None,
        },
    )
    .await;
    loop {
        tokio::select! {
            m = alarms.recv() => match m {
                Some(m) => send(&mut s, &m).await,
                None => return,
            },
            n = s.read(&mut buf) => {
                let Ok(n) = n else { return };
                if n == 0 { return; }
                d.push(&buf[..n]);
                while let Ok(Some(Frame::Control(m))) = d.next_frame() {
                    if let Message::Ping { nonce } = m {
                        send(&mut s, &Message::Pong { nonce }).await;
                    }
                }
            }
        }
    }
}

fn proc_stat(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (rss_kb, ticks / 100.0)
}

#[tokio::main]
async fn main() {
    let a = args();
    *ARGS_CA.lock().unwrap() = a.ca.clone();
    let http_cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&a.ca))
        .with_no_client_auth(),
    );
    let base = a.pid.map(proc_stat);
    // The owner.
    let email = format!("load{}@example.com", rand::random::<u32>());
    let creds =
        serde_json::json!({"email": email, "password": "load generator password"}).to_string();
    let (st, _, b) = http(&http_cfg, &a.addr, "POST", "/api/accounts", "", &creds).await;
    assert_eq!(st, 201, "{b}");
    let (st, head, b) = http(&http_cfg, &a.addr, "POST", "/api/login", "", &creds).await;
    assert_eq!(st, 200, "{b}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let csrf = serde_json::from_str::<serde_json::Value>(&b).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = Arc::new(Owner { cookie, csrf });

    // The owner's app: a WebSocket, timing every alarm's arrival.
    let sent: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    {
        let tls = https(&http_cfg, &a.addr).await;
        let req = http::Request::builder()
            .uri(format!("wss://{}/api/ws", a.addr))
            .header("Host", &a.addr)
            .header("Origin", format!("https://{}", a.addr))
            .header("Cookie", &owner.cookie)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header(
                "Sec-WebSocket-Key",
                tokio_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(req, tls)
            .await
            .expect("websocket");
        let (sent, lat) = (sent.clone(), latencies.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "alarm" {
                        let key = (
                            v["alarm"]["site"].as_str().unwrap_or("").to_string(),
                            v["alarm"]["id"].as_u64().unwrap_or(0),
                        );
                        if let Some(t0) = sent.lock().unwrap().remove(&key) {
                            lat.lock()
                                .unwrap()
                                .push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                }
            }
            let _ = ws.close(None).await;
        });
    }

    // Pair and connect the recorders, a bounded number at a time.
    let t_pair = Instant::now();
    let up = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
    let mut joins = Vec::new();
    for n in 0..a.recorders {
        let (http_cfg, addr, owner, sem, up) = (
            http_cfg.clone(),
            a.addr.clone(),
            owner.clone(),
            sem.clone(),
            up.clone(),
        );
        joins.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let (key, site) = pair(&http_cfg, &addr, &owner, n).await;
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(run_site(key, addr, site.clone(), rx, up));
            (site, tx)
        }));
    }
    let mut sites = Vec::new();
    for j in joins {
        sites.push(j.await.unwrap());
    }
    while up.load(std::sync::atomic::Ordering::Relaxed) < a.recorders {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pair_secs = t_pair.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = a.pid.map(proc_stat);

    // Alarms at a steady rate, spread over the recorders.
    let gap = Duration::from_secs_f64(1.0 / a.rate);
    let t_alarm = Instant::now();
    for i in 0..a.alarms {
        let (site, tx) = &sites[i % sites.len()];
        let id = (i / sites.len() + 1) as u64;
        sent.lock()
            .unwrap()
            .insert((site.clone(), id), Instant::now());
        let _ = tx
            .send(Message::Alarm {
                id,
                at: jiff::Timestamp::now().to_string(),
                late: false,
                camera: Some("cam".into()),
                kind: Some("motion".into()),
            })
            .await;
        let next = t_alarm + gap * (i as u32 + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.lock().unwrap().len() < a.alarms && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle with every connection up: heartbeats only.
    let before_hold = a.pid.map(proc_stat);
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let after_hold = a.pid.map(proc_stat);
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| {
        l.get(
            ((l.len() as f64 * p).ceil() as usize)
                .saturating_sub(1)
                .min(l.len().saturating_sub(1)),
        )
        .copied()
    };
    let rss = |x: Option<(u64, f64)>| x.map(|v| v.0);
    let per_conn = match (base, connected) {
        (Some(b), Some(c)) => Some((c.0 as f64 - b.0 as f64) / a.recorders as f64),
        _ => None,
    };
    let idle_cpu = match (before_hold, after_hold) {
        (Some(b), Some(c)) => Some(100.0 * (c.1 - b.1) / a.hold.max(1) as f64),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "recorders": a.recorders,
            "connected": up.load(std::sync::atomic::Ordering::Relaxed),
            "pair_and_connect_secs": pair_secs,
            "alarms_sent": a.alarms,
            "alarms_received": l.len(),
            "alarm_rate_per_sec": a.rate,
            "latency_ms": {"p50": q(0.5), "p99": q(0.99), "max": l.last()},
            "cloud_rss_kb": {"before": rss(base), "connected": rss(connected), "after": rss(after_hold)},
            "rss_kb_per_connection": per_conn,
            "cloud_cpu_percent_idle_connected": idle_cpu,
        })
    );
}
