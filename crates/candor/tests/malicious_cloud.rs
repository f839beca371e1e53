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
    config.alpn_protocols = vec![candor_link::ALPN.to_vec()];
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

#[test]
fn a_lying_cloud_cannot_pair_or_flood_the_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (acceptor, ca) = server_tls(dir.path());
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
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
    let admin = Web::login(&rec, dir.path(), "root", "root password 1");

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
    let site_key = rt.block_on(async {
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
    });
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
