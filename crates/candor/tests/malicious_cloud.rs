//! A malicious cloud, speaking the real link protocol (candor-link frames
//! over TLS 1.3 with the recorder's own client key), against the real
//! `candor run`: it claims a pairing the recorder's admin never confirmed,
//! then floods pings and acknowledgements. The recorder must not pair, and
//! what the cloud can make it write must stay bounded.

mod common;
use candor_link::{Decoder, Frame, Message};
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn server_tls(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, std::path::PathBuf) {
    // A certificate for the loopback addresses, made as the cloud makes its own.
    let id = candor_auth::tls::load_or_generate(&dir.join("evil-tls"), None, None, "evil").unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_client_cert_verifier(candor_link::identity::RecorderKeyVerifier::new())
    .with_single_cert(id.certs, id.key)
    .unwrap();
    // A cloud that takes data connections (it may then send `dial`); the
    // recorder still serves the streams it opens.
    config.alpn_protocols = vec![candor_link::ALPN_DIAL.to_vec(), candor_link::ALPN.to_vec()];
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        id.cert_path,
    )
}

type Tls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

async fn send(s: &mut Tls, m: Message) {
    s.write_all(&candor_link::encode(&Frame::Control(m)).unwrap())
        .await
        .unwrap();
    s.flush().await.unwrap();
}

/// The next control message from the recorder (None: it hung up).
async fn recv(s: &mut Tls, d: &mut Decoder) -> Option<Message> {
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(Frame::Control(m))) = d.next_frame() {
            return Some(m);
        }
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => d.push(&buf[..n]),
            _ => return None,
        }
    }
}

/// An honest cloud's side of a pairing, up to the owner's claim: the
/// recorder's `pair_start`, a code, the claim.
async fn claimed(listener: &tokio::net::TcpListener, acceptor: &tokio_rustls::TlsAcceptor) -> Tls {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut s = acceptor.accept(tcp).await.unwrap();
    let mut d = Decoder::new();
    assert!(matches!(
        recv(&mut s, &mut d).await,
        Some(Message::PairStart { .. })
    ));
    send(
        &mut s,
        Message::PairCode {
            code: "ABCD234567".into(),
            expires_in: 600,
        },
    )
    .await;
    send(
        &mut s,
        Message::PairClaimed {
            account: "owner@example.com".into(),
            nonce: "n1".into(),
        },
    )
    .await;
    s
}

/// A recorder (`candor run`, one camera) whose `[cloud]` is the test's own
/// listener, trusted through its generated certificate, with an admin.
struct Victim {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    _sim: Sim,
    cfg: std::path::PathBuf,
    rec: RecorderProc,
    admin: Web,
}

fn victim(dir: &std::path::Path) -> Victim {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (acceptor, ca) = server_tls(dir);
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir, "", &[("gate", sim.url(0), "")]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!(
        "\n[cloud]\naddress = \"127.0.0.1:{port}\"\nca = \"{}\"\nname = \"Victim\"\n",
        ca.display()
    );
    std::fs::write(&cfg, text).unwrap();
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let admin = Web::login(&rec, dir, "root", "root password 1");
    Victim {
        rt,
        listener,
        acceptor,
        _sim: sim,
        cfg,
        rec,
        admin,
    }
}

#[test]
fn a_lying_cloud_cannot_pair_or_flood_the_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let Victim {
        rt,
        listener,
        acceptor,
        _sim,
        cfg,
        rec: _rec,
        admin,
    } = victim(dir.path());

    // 1. Paired, said before the admin confirmed anything.
    let (code, _, v) = admin.api("POST", "cloud/pair", Some("{}"));
    assert_eq!(code, 200, "{v}");
    let (said, mut conn) = rt.block_on(async {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut d = Decoder::new();
        let first = recv(&mut s, &mut d).await;
        send(
            &mut s,
            Message::PairCode {
                code: "ABCD234567".into(),
                expires_in: 600,
            },
        )
        .await;
        send(
            &mut s,
            Message::PairClaimed {
                account: "evil@example.com".into(),
                nonce: "n0nce".into(),
            },
        )
        .await;
        send(
            &mut s,
            Message::Paired {
                site: "stolen".into(),
            },
        )
        .await;
        // The recorder must not answer with anything that follows a pairing.
        let next = recv(&mut s, &mut d).await;
        ((first, next), s)
    });
    assert!(
        matches!(said.0, Some(Message::PairStart { .. })),
        "{:?}",
        said.0
    );
    assert!(
        said.1.is_none(),
        "the recorder went on after the lie: {:?}",
        said.1
    );
    let (_, _, state) = admin.api("GET", "cloud", None);
    assert!(
        state["paired"].is_null(),
        "paired without confirmation: {state}"
    );
    assert!(!dir.path().join("data/cloud/paired.json").exists());
    drop(conn);

    // 2. An honest pairing, then a flood: 2,000 pings and 1,000
    // acknowledgements as fast as TLS carries them.
    let (code, _, v) = admin.api("POST", "cloud/pair", Some("{}"));
    assert_eq!(code, 200, "{v}");
    let site_key = rt.block_on(claimed(&listener, &acceptor));
    conn = site_key;
    wait_for("the confirmation code", Duration::from_secs(10), || {
        admin.api("GET", "cloud", None).2["pairing"]["confirmation"].is_string()
    });
    let (code, _, v) = admin.api("POST", "cloud/pair/confirm", Some("{}"));
    assert_eq!(code, 200, "{v}");
    let sent_by_recorder = rt.block_on(async {
        let mut d = Decoder::new();
        assert!(matches!(
            recv(&mut conn, &mut d).await,
            Some(Message::PairConfirm { .. })
        ));
        send(&mut conn, Message::Paired { site: "s1".into() }).await;
        drop(conn);
        // It comes back with its key and says hello.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut d = Decoder::new();
        assert!(matches!(
            recv(&mut s, &mut d).await,
            Some(Message::Hello { .. })
        ));
        send(&mut s, Message::Welcome { site: "s1".into() }).await;
        let flood = async {
            for i in 0..2000u64 {
                send(&mut s, Message::Ping { nonce: i }).await;
                if i % 2 == 0 {
                    send(
                        &mut s,
                        Message::Acknowledge {
                            alarm: i,
                            by: "evil".into(),
                        },
                    )
                    .await;
                }
            }
        };
        flood.await;
        // Count what the recorder sends back over the next 6 s.
        let mut pongs = 0;
        let mut acks = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(6);
        while let Ok(Some(m)) = tokio::time::timeout_at(until, recv(&mut s, &mut d)).await {
            match m {
                Message::Pong { .. } => pongs += 1,
                Message::AckRecorded { .. } => acks += 1,
                _ => {}
            }
        }
        (pongs, acks)
    });
    eprintln!(
        "after 2,000 pings and 1,000 acknowledgements: {} pongs, {} ack answers",
        sent_by_recorder.0, sent_by_recorder.1
    );
    assert!(sent_by_recorder.0 <= 3, "{} pongs", sent_by_recorder.0);
    assert!(
        sent_by_recorder.1 <= 10,
        "{} ack answers",
        sent_by_recorder.1
    );
    let (_, _, state) = admin.api("GET", "cloud", None);
    assert_eq!(state["paired"]["site"], "s1", "{state}");
    // The ledger shows the heartbeats as one row with a count, and stays small.
    let (code, _, ledger) = admin.api("GET", "egress", None);
    assert_eq!(code, 200);
    let entries = ledger["entries"].as_array().unwrap();
    let pong_rows: Vec<_> = entries.iter().filter(|e| e["kind"] == "pong").collect();
    assert_eq!(pong_rows.len(), 1, "{ledger}");
    assert!(
        pong_rows[0]["summary"]
            .as_str()
            .unwrap()
            .contains("heartbeat answers"),
        "{ledger}"
    );
    assert!(
        entries.len() < 100,
        "{} ledger rows after the flood",
        entries.len()
    );
    // Recording went on.
    assert!(recorded_secs(&cfg, "gate") > 1.0);
}

/// Stream frames from the recorder until it hangs up or `secs` pass.
async fn stream_frames(s: &mut Tls, d: &mut Decoder, secs: u64) -> (Vec<Frame>, bool) {
    let mut buf = [0u8; 16384];
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        while let Ok(Some(f)) = d.next_frame() {
            if !matches!(f, Frame::Control(_)) {
                got.push(f);
            }
        }
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => d.push(&buf[..n]),
            Ok(_) => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// The cloud's answer to a hello with remote access on.
/// Takes the connections `listener` is offered until none comes for 3 s.
async fn accept_until_quiet(
    listener: &tokio::net::TcpListener,
    held: &mut Vec<tokio::net::TcpStream>,
) {
    while let Ok(Ok((c, _))) = tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
    {
        held.push(c);
    }
}

fn remote_name() -> Message {
    Message::Remote {
        host: "abcd2345.remote.test".into(),
        port: 443,
        acme: false,
    }
}

fn open(stream: u32, hello: &[u8]) -> Vec<u8> {
    let mut payload = vec![9u8];
    payload.extend_from_slice(b"192.0.2.7");
    payload.extend_from_slice(hello);
    candor_link::encode(&Frame::Open { stream, payload }).unwrap()
}

/// A paired cloud opens streams: refused while the owner has remote access
/// off (and an unasked `remote` ends the connection); served once it is on;
/// a cloud that sends more than it was granted loses the link, and the
/// recorder records on through all of it.
#[test]
fn a_cloud_gets_no_stream_the_owner_did_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let Victim {
        rt,
        listener,
        acceptor,
        _sim,
        cfg,
        rec: _rec,
        admin,
    } = victim(dir.path());
    let (code, _, v) = admin.api("POST", "cloud/pair", Some("{}"));
    assert_eq!(code, 200, "{v}");
    let mut pairing = rt.block_on(claimed(&listener, &acceptor));
    wait_for("the confirmation code", Duration::from_secs(10), || {
        admin.api("GET", "cloud", None).2["pairing"]["confirmation"].is_string()
    });
    assert_eq!(admin.api("POST", "cloud/pair/confirm", Some("{}")).0, 200);
    let hello = client_hello("abcd2345.remote.test");
    // Each connection: the recorder's hello, the cloud's welcome.
    let next = |conn: Tls| {
        let (listener, acceptor) = (&listener, &acceptor);
        async move {
            drop(conn);
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let mut d = Decoder::new();
            let h = recv(&mut s, &mut d).await;
            send(&mut s, Message::Welcome { site: "s1".into() }).await;
            (s, d, h)
        }
    };
    let (refused, ended_on_remote, conn) = rt.block_on(async {
        let mut d = Decoder::new();
        recv(&mut pairing, &mut d).await;
        send(&mut pairing, Message::Paired { site: "s1".into() }).await;
        let (mut s, mut d, h) = next(pairing).await;
        assert!(
            matches!(h, Some(Message::Hello { remote: false, .. })),
            "{h:?}"
        );
        // Remote access is off: the open is refused, nothing is served, and
        // a dial brings no data connection.
        s.write_all(&open(1, &hello)).await.unwrap();
        let (frames, _) = stream_frames(&mut s, &mut d, 3).await;
        send(
            &mut s,
            Message::Dial {
                token: "5a".repeat(32),
                client: "192.0.2.8:5000".into(),
            },
        )
        .await;
        assert!(
            tokio::time::timeout(Duration::from_secs(3), listener.accept())
                .await
                .is_err(),
            "a dial with remote access off must not connect"
        );
        // An unasked remote name ends the connection.
        send(&mut s, remote_name()).await;
        let (_, hung_up) = stream_frames(&mut s, &mut d, 10).await;
        (frames, hung_up, s)
    });
    assert_eq!(refused, [Frame::Close { stream: 1 }], "{refused:?}");
    assert!(ended_on_remote, "an unasked remote name must end the link");

    // The admin switches remote access on: the same open is served (TLS
    // from the recorder's own web server: a ServerHello record).
    let (code, _, v) = admin.api("PUT", "cloud/remote", Some(r#"{"enabled":true}"#));
    assert_eq!(code, 200, "{v}");
    let (served, overrun_ends) = rt.block_on(async {
        let (s, d, h) = next(conn).await;
        // The switch may land just after this connection's hello.
        let (mut s, mut d) = if matches!(h, Some(Message::Hello { remote: true, .. })) {
            (s, d)
        } else {
            let (s2, d2, h2) = next(s).await;
            assert!(
                matches!(h2, Some(Message::Hello { remote: true, .. })),
                "{h2:?}"
            );
            (s2, d2)
        };
        send(&mut s, remote_name()).await;
        s.write_all(&open(3, &hello)).await.unwrap();
        let (frames, _) = stream_frames(&mut s, &mut d, 3).await;
        // A dial: the recorder connects to the configured cloud address (this
        // listener), says the token, and serves TLS on the connection.
        let token = "5a".repeat(32);
        send(
            &mut s,
            Message::Dial {
                token: token.clone(),
                client: "192.0.2.8:5000".into(),
            },
        )
        .await;
        let (mut data, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("a data connection")
            .unwrap();
        let mut pre = vec![0u8; candor_link::dial::PREAMBLE_LEN];
        data.read_exact(&mut pre).await.unwrap();
        assert_eq!(pre, candor_link::dial::preamble(&token));
        data.write_all(&hello).await.unwrap();
        let mut record = [0u8; 1];
        data.read_exact(&mut record).await.unwrap();
        assert_eq!(
            record[0], 0x16,
            "a TLS handshake record on the data connection"
        );
        drop(data);
        // A cloud that dials more than a site may hold: 12 for one client
        // get 8 connections, and 40 more for others bring the total to 32
        // (held open meanwhile; the recorder closes them at its handshake
        // timeout).
        let dials = |n: usize, first: usize, client: &dyn Fn(usize) -> String| {
            (0..n)
                .map(|i| {
                    candor_link::encode(&Frame::Control(Message::Dial {
                        token: format!("{:064x}", first + i),
                        client: client(i),
                    }))
                    .unwrap()
                })
                .collect::<Vec<_>>()
                .concat()
        };
        let mut held = Vec::new();
        s.write_all(&dials(12, 100, &|_| "192.0.2.9:5000".into()))
            .await
            .unwrap();
        accept_until_quiet(&listener, &mut held).await;
        assert_eq!(held.len(), 8, "one client's data connections");
        s.write_all(&dials(40, 200, &|i| format!("198.51.100.{i}:5000")))
            .await
            .unwrap();
        accept_until_quiet(&listener, &mut held).await;
        assert_eq!(held.len(), 32, "a site's data connections");
        drop(held);
        // The open's bytes used part of the window (no credit comes back
        // before half of it is drained); a full window more is an overrun.
        let data = candor_link::encode(&Frame::Data {
            stream: 3,
            payload: vec![0x16; candor_link::mux::WINDOW as usize].into(),
        })
        .unwrap();
        let _ = s.write_all(&data).await;
        let (_, hung_up) = stream_frames(&mut s, &mut d, 10).await;
        (frames, hung_up)
    });
    let server_hello = served.iter().find_map(|f| match f {
        Frame::Data { stream: 3, payload } => Some(payload.clone()),
        _ => None,
    });
    assert!(
        server_hello
            .as_ref()
            .is_some_and(|p| p.first() == Some(&0x16)),
        "the recorder answers the ClientHello with a TLS handshake record: {served:?}"
    );
    assert!(overrun_ends, "an overrun must end the link");
    assert!(recorded_secs(&cfg, "gate") > 1.0);
    // The served stream and the data connections are in the ledger (by
    // bytes only: the served one, and the 32 held, each with its 79-byte
    // preamble); the refused ones never carried a byte.
    let mut rows = Vec::new();
    wait_for("34 tunnel rows", Duration::from_secs(20), || {
        let (_, _, v) = admin.api("GET", "egress?kind=tunnel", None);
        rows = v["entries"].as_array().unwrap().clone();
        rows.len() >= 34
    });
    assert_eq!(rows.len(), 34, "{rows:?}");
    let held = rows
        .iter()
        .filter(|r| r["bytes"] == 79 && r["summary"].as_str().unwrap().contains("0 bytes sent"))
        .count();
    assert_eq!(held, 32, "{rows:?}");
    let summaries: Vec<&str> = rows
        .iter()
        .map(|r| r["summary"].as_str().unwrap())
        .collect();
    assert!(
        summaries.iter().any(|s| s.contains("192.0.2.7")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("192.0.2.8") && s.contains("a data connection")),
        "{summaries:?}"
    );

    // Data connections that can't reach the cloud while the link does (as
    // behind a filter that lets only TLS out; here the port refuses them):
    // after three in a row the recorder reconnects offering only streams.
    let addr = listener.local_addr().unwrap();
    let (first, second) = rt.block_on(async {
        // The recorder's reconnection after the overrun.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let first = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut d = Decoder::new();
        recv(&mut s, &mut d).await;
        send(&mut s, Message::Welcome { site: "s1".into() }).await;
        send(&mut s, remote_name()).await;
        drop(listener);
        for i in 0..3 {
            send(
                &mut s,
                Message::Dial {
                    token: format!("{:064x}", 900 + i),
                    client: format!("203.0.113.{i}:5000"),
                },
            )
            .await;
        }
        // The link ends (the recorder's choice) within its status tick.
        let (_, ended) = stream_frames(&mut s, &mut d, 10).await;
        assert!(ended, "the recorder ends the link to fall back");
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
            .await
            .expect("the recorder reconnects")
            .unwrap();
        let s = acceptor.accept(tcp).await.unwrap();
        let second = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        (first, second)
    });
    assert_eq!(first.as_deref(), Some(candor_link::ALPN_DIAL));
    assert_eq!(
        second.as_deref(),
        Some(candor_link::ALPN),
        "streams only, for now"
    );
    let (_, _, v) = admin.api("GET", "egress?kind=tunnel", None);
    let failed = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["summary"].as_str().unwrap().contains("failed"))
        .count();
    assert_eq!(failed, 3, "{v}");
}
