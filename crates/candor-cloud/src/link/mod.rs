//! The cloud's end of a recorder's link.
//!
//! A connection's key decides what it may do: a paired key gets its site's
//! session; an unknown key may only ask for a pairing code; a revoked key is
//! told why and dropped. Any protocol error closes the connection.

use crate::db::Val;
use crate::{Claim, Cloud, Online, Pairing, now};
use candor_link::tunnel::Tunnel;
use candor_link::{Decoder, Message, Refusal};
use candor_wire::cloud::Notice;

mod rules;
pub use rules::STATE_PER_MINUTE;
use rules::{In, StateBudget, Unpaired, accept, is_state, over_budget, unpaired_step};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub const PAIRING_SECS: u64 = 600;
const PING_EVERY: Duration = Duration::from_secs(10);

type Tls = tokio_rustls::server::TlsStream<crate::relay::Rewind<tokio::net::TcpStream>>;

/// Pairing connections from one address at once, and in all: a key the
/// cloud doesn't know costs nothing to make, so unknown keys get a small
/// share of the connection cap and a bounded lifetime.
pub const PAIRING_PER_ADDRESS: usize = 4;
pub const PAIRING_IN_ALL: usize = 1_000;
/// A pairing connection ends this long after it opened, code used or not.
pub const PAIRING_LIFETIME: Duration = Duration::from_secs(PAIRING_SECS + 60);

pub async fn serve(cloud: Arc<Cloud>, tls: Tls, key: [u8; 32], peer: SocketAddr) {
    if let Err(e) = serve_inner(&cloud, tls, key, peer).await {
        tracing::debug!(%peer, "link ended: {e}");
    }
}

enum Role {
    Site { id: String, account: String },
    Pairing,
    Refused(Refusal, &'static str),
}

async fn role(cloud: &Cloud, key: &[u8; 32]) -> Result<Role, String> {
    let row = cloud
        .db
        .query_one(
            "SELECT id, account FROM site WHERE pubkey = $1",
            vec![Val::from(&key[..])],
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(r) = row {
        return Ok(Role::Site {
            id: r.text(0).map_err(|e| e.to_string())?,
            account: r.text(1).map_err(|e| e.to_string())?,
        });
    }
    let revoked = cloud
        .db
        .query_one(
            "SELECT at FROM revoked_key WHERE pubkey = $1",
            vec![Val::from(&key[..])],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(if revoked.is_some() {
        Role::Refused(
            Refusal::Unpaired,
            "this recorder was unpaired; pairing it again makes a new key",
        )
    } else {
        Role::Pairing
    })
}

fn send(tunnel: &Tunnel, m: Message) -> Result<(), String> {
    tunnel.control(m).map_err(|e| e.to_string())
}

async fn serve_inner(
    cloud: &Arc<Cloud>,
    tls: Tls,
    key: [u8; 32],
    peer: SocketAddr,
) -> Result<(), String> {
    let role = role(cloud, &key).await?;
    let dial = tls.get_ref().1.alpn_protocol() == Some(candor_link::ALPN_DIAL);
    // The writer runs apart from the reader (candor_link::tunnel): stream
    // data to a slow recorder never stops this side from reading it.
    let (mut rd, wr) = tokio::io::split(tls);
    let (tunnel, mut writer) = Tunnel::start(wr, crate::relay::STREAM_IDLE, None);
    let result = serve_role(cloud, role, &mut rd, &tunnel, key, peer, dial).await;
    tunnel.end();
    // What is queued (a refusal, say) goes out, unless the recorder stopped
    // reading: then the connection is dropped.
    match tokio::time::timeout(Duration::from_secs(5), &mut writer).await {
        Ok(Ok((w, _))) => {
            let mut tls = rd.unsplit(w);
            let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
        }
        _ => writer.abort(),
    }
    result
}

async fn serve_role(
    cloud: &Arc<Cloud>,
    role: Role,
    rd: &mut tokio::io::ReadHalf<Tls>,
    tunnel: &Tunnel,
    key: [u8; 32],
    peer: SocketAddr,
    dial: bool,
) -> Result<(), String> {
    let mut _pairing_place = None;
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let conn = cloud.conn_id();
    let mut session = match role {
        Role::Refused(code, reason) => {
            send(
                tunnel,
                Message::Refused {
                    code,
                    reason: reason.into(),
                },
            )?;
            return Ok(());
        }
        Role::Site { id, account } => {
            if let Some(old) = cloud
                .online
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id.clone(),
                    Online {
                        tx: tx.clone(),
                        conn,
                    },
                )
            {
                // A newer connection from the same key wins (the old one is
                // half-dead, or the key was copied: either way, one session).
                drop(old);
            }
            send(tunnel, Message::Welcome { site: id.clone() })?;
            set_online(cloud, &id, &account, true).await;
            resend_acks(cloud, &id, &tx).await;
            quote_grants(cloud, &id, &tx).await;
            // Without its label the link still carries alarms and status;
            // returning here would skip the clean-up below and leave the
            // site online.
            if let Err(e) = remote_up(cloud, &id, conn, tunnel, dial).await {
                tracing::warn!(site = id, "remote access not set up for this link: {e}");
            }
            Some((id, account))
        }
        Role::Pairing => {
            let Some(place) = cloud.pairing_gate.admit(peer.ip()) else {
                send(
                    tunnel,
                    Message::Refused {
                        code: Refusal::Busy,
                        reason: "too many recorders are pairing from this address; try again later"
                            .into(),
                    },
                )?;
                return Ok(());
            };
            _pairing_place = Some(place);
            None
        }
    };
    let pairing = session.is_none();
    let mut decoder = Decoder::new();
    // A recorder that died without a word (power cut, cable) shows offline
    // within offline_after + 1 s of its last frame (the sweeper checks each
    // second); pings every 10 s keep a live one from going quiet.
    let live = Arc::new(crate::Liveness {
        last: crate::epoch_ms().into(),
        kill: tokio::sync::Notify::new(),
    });
    cloud
        .liveness
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(conn, live.clone());
    if pairing {
        let live = live.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PAIRING_LIFETIME).await;
            live.kill.notify_one();
        });
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut pairing_code: Option<String> = None;
    let mut state_budget = StateBudget::new(Instant::now());
    // In a block, so every early return (a write error, a protocol error)
    // still reaches the clean-up below.
    let result: Result<(), String> = async {
    loop {
        tokio::select! {
            // Straight into the decoder's buffer: stream data is passed on
            // as slices of it (candor_link::Decoder).
            n = rd.read_buf(decoder.read_room()) => {
                match n {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e.to_string()),
                }
                live.last.store(crate::epoch_ms(), std::sync::atomic::Ordering::Relaxed);
                let mut out = Vec::new();
                loop {
                    let m = match accept(decoder.next_frame(), session.is_some())? {
                        None => break,
                        Some(In::Message(m)) => m,
                        Some(In::Stream(f)) => {
                            tunnel.on_frame(f, false).map_err(|e| format!("protocol error: {e}"))?;
                            continue;
                        }
                    };
                    match &session {
                        Some((site, account)) => {
                            if is_state(&m) && !state_budget.take(Instant::now()) {
                                out.push(over_budget());
                                break;
                            }
                            if let Some(reply) = on_site_message(cloud, site, conn, account, m).await? {
                                out.push(reply);
                            }
                        }
                        None => match unpaired_step(m, pairing_code.is_some())? {
                            Unpaired::Start { name } => {
                                let code = new_code();
                                cloud.pairings.lock().unwrap_or_else(|e| e.into_inner()).insert(
                                    code.clone(),
                                    Pairing {
                                        pubkey: key,
                                        name,
                                        expires: Instant::now() + Duration::from_secs(PAIRING_SECS),
                                        tx: tx.clone(),
                                        claim: None,
                                    },
                                );
                                out.push(Message::PairCode { code: code.clone(), expires_in: PAIRING_SECS as u32 });
                                pairing_code = Some(code);
                            }
                            Unpaired::Confirm { confirmation } => {
                                let code = pairing_code.clone().ok_or("confirm before a pairing")?;
                                match confirm(cloud, &code, &confirmation).await? {
                                    Some(site) => out.push(Message::Paired { site }),
                                    None => out.push(Message::Refused { code: Refusal::CodeMismatch, reason: "the confirmation code does not match: start again".into() }),
                                }
                            }
                            Unpaired::Nothing => {}
                            Unpaired::Refuse(m) => out.push(m),
                        },
                    }
                }
                let mut close = false;
                for m in out {
                    close |= matches!(m, Message::Refused { .. });
                    send(tunnel, m)?;
                }
                if close {
                    break Ok(());
                }
            }
            m = rx.recv() => match m {
                Some(m) => {
                    let close = matches!(m, Message::Refused { .. });
                    send(tunnel, m)?;
                    if close { break Ok(()); }
                }
                None => break Ok(()),
            },
            _ = ping.tick() => {
                send(tunnel, Message::Ping { nonce: rand::random() })?;
            }
            _ = tunnel.ended() => break Err("writing to the recorder failed".into()),
            _ = live.kill.notified() => break Err("silent for too long".into()),
        }
        // The site was unpaired during this session (from the app).
        if let Some((site, _)) = &session {
            let still = cloud
                .online
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(site)
                .is_some_and(|o| o.conn == conn);
            if !still {
                session = None;
                break Ok(());
            }
        }
    }
    }
    .await;
    cloud
        .liveness
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&conn);
    if let Some(code) = pairing_code {
        // A finished pairing stays until it expires, so the owner's app can
        // still read its outcome; an unfinished one ends with the connection.
        let mut p = cloud.pairings.lock().unwrap_or_else(|e| e.into_inner());
        if p.get(&code)
            .is_some_and(|p| p.claim.as_ref().is_none_or(|c| c.site.is_none()))
        {
            p.remove(&code);
        }
    }
    // Remote access ends with the link (whichever way it ended), and so
    // does a challenge answer it published.
    let mut gone = Vec::new();
    cloud
        .remote
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|l, e| {
            if e.conn == conn {
                e.cut();
                gone.push(l.clone());
            }
            e.conn != conn
        });
    if let Some(zone) = &cloud.dns {
        for l in gone {
            // Unless the site's newer link took the label meanwhile.
            if !cloud
                .remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&l)
            {
                zone.clear_txt(&l).await;
            }
        }
    }
    if let Some((site, account)) = session {
        let mine = {
            let mut online = cloud.online.lock().unwrap_or_else(|e| e.into_inner());
            if online.get(&site).is_some_and(|o| o.conn == conn) {
                online.remove(&site);
                true
            } else {
                false
            }
        };
        if mine {
            set_online(cloud, &site, &account, false).await;
        }
    }
    result
}

/// The site's label (given now if it has none: sites paired before remote
/// access), registered for remote access while this link is up. Streams
/// open only once the recorder's hello allows it.
async fn remote_up(
    cloud: &Cloud,
    site: &str,
    conn: u64,
    tunnel: &Tunnel,
    dial: bool,
) -> Result<(), String> {
    let label = site_label(cloud, site).await?;
    let end = Arc::new(crate::RemoteEnd {
        site: site.to_owned(),
        conn,
        tunnel: tunnel.clone(),
        allowed: false.into(),
        dial: dial.into(),
        next_stream: 1.into(),
        opens: Default::default(),
        streams: candor_auth::conn::ConnGate::new(candor_auth::conn::Limits {
            max_connections: candor_link::mux::MAX_STREAMS,
            max_per_address: crate::relay::STREAMS_PER_CLIENT,
            ..Default::default()
        }),
        cuts: tokio::sync::watch::Sender::new(0),
    });
    // A newer link of the same key takes the label: the old one's pairs
    // are cut now, not when its last reference goes.
    let old = cloud
        .remote
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(label, end);
    if let Some(old) = old {
        old.cut();
    }
    Ok(())
}

async fn site_label(cloud: &Cloud, site: &str) -> Result<String, String> {
    for _ in 0..3 {
        let r = cloud
            .db
            .query_one("SELECT label FROM site WHERE id = $1", vec![site.into()])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(label) = r.and_then(|r| r.opt_text(0).ok().flatten()) {
            return Ok(label);
        }
        // A clash with another site's label fails on the unique index: the
        // next turn draws again.
        let _ = cloud
            .db
            .exec(
                "UPDATE site SET label = $1 WHERE id = $2 AND label IS NULL",
                vec![crate::relay::new_label().into(), site.into()],
            )
            .await;
    }
    Err("could not give the site a label".into())
}

/// 10 characters from an alphabet without 0/O, 1/I/L: about 49 bits, read
/// off a screen and typed on a phone without mistakes.
pub fn new_code() -> String {
    const A: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    use rand::Rng;
    let mut r = rand::rngs::OsRng;
    (0..10)
        .map(|_| A[r.gen_range(0..A.len())] as char)
        .collect()
}

/// The recorder's admin confirmed: bind its key to the claiming account if
/// both sides computed the same confirmation code.
async fn confirm(cloud: &Cloud, code: &str, confirmation: &str) -> Result<Option<String>, String> {
    let (claim, pubkey, name) = {
        let p = cloud.pairings.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = p.get(code) else {
            return Ok(None);
        };
        match &p.claim {
            Some(c) if p.expires > Instant::now() && c.site.is_none() => {
                (c.clone(), p.pubkey, p.name.clone())
            }
            _ => return Ok(None),
        }
    };
    if !candor_auth::same(&claim.confirmation, confirmation) {
        return Ok(None);
    }
    let site = new_id();
    let t = now();
    cloud
        .db
        .exec(
            "INSERT INTO site (id, account, name, pubkey, sharing, paired_at, online, since) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            vec![
                site.clone().into(),
                claim.account.clone().into(),
                name.into(),
                Val::from(&pubkey[..]),
                "online_only".into(),
                t.into(),
                t.into(),
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(p) = cloud
        .pairings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(code)
        && let Some(c) = &mut p.claim
    {
        c.site = Some(site.clone());
    }
    if let Ok(Some(j)) = cloud.site_json(&site).await {
        cloud.notify(&claim.account, Notice::Site { site: j });
    }
    tracing::info!(site, account = claim.email, "recorder paired");
    Ok(Some(site))
}

/// Random 128-bit id, URL-safe.
pub fn new_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// An owner entered a code in the app: claim it (once) and tell the recorder.
pub fn claim(cloud: &Cloud, code: &str, account: &str, email: &str) -> Option<(Claim, String)> {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut pairings = cloud.pairings.lock().unwrap_or_else(|e| e.into_inner());
    let p = pairings.get_mut(&code)?;
    if p.claim.is_some() || p.expires <= Instant::now() {
        return None;
    }
    let nonce = new_id();
    let c = Claim {
        id: new_id(),
        account: account.to_owned(),
        email: email.to_owned(),
        confirmation: candor_link::confirmation(&code, &p.pubkey, email, &nonce),
        site: None,
    };
    p.claim = Some(c.clone());
    let _ = p.tx.try_send(Message::PairClaimed {
        account: email.to_owned(),
        nonce,
    });
    Some((c, p.name.clone()))
}

async fn set_online(cloud: &Cloud, site: &str, account: &str, online: bool) {
    let r = cloud
        .db
        .exec(
            "UPDATE site SET online = $1, since = $2 WHERE id = $3",
            vec![i64::from(online).into(), now().into(), site.into()],
        )
        .await;
    if let Err(e) = r {
        tracing::error!(site, "recording online state: {e}");
    }
    if let Ok(Some(j)) = cloud.site_json(site).await {
        cloud.notify(account, Notice::Site { site: j });
    }
}

/// Acknowledgements made while the recorder was away.
async fn resend_acks(cloud: &Cloud, site: &str, tx: &mpsc::Sender<Message>) {
    let Ok(rows) = cloud
        .db
        .query(
            "SELECT id, acked_by FROM alarm WHERE site = $1 AND acked_by IS NOT NULL AND ack_recorded = 0 ORDER BY id",
            vec![site.into()],
        )
        .await
    else {
        return;
    };
    for r in rows {
        if let (Ok(id), Ok(by)) = (r.int(0), r.text(1)) {
            let _ = tx
                .send(Message::Acknowledge {
                    alarm: id as u64,
                    by,
                })
                .await;
        }
    }
}

/// Quotes this site's grants as the mirror holds them, so the recorder can
/// check them: a mirror that was changed (by an intruder in this database,
/// or by this code gone wrong) shows up in the owner's audit log. Sent
/// only when there is something to quote: recorders from before grants
/// were reported know no such message.
async fn quote_grants(cloud: &Cloud, site: &str, tx: &mpsc::Sender<Message>) {
    let (generation, grants) = match mirrored_grants(cloud, site).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(site, "reading the grants mirror: {e}");
            return;
        }
    };
    // Whenever there is a mirror: rows without a number (0, which no
    // recorder sends) are quoted too, and judged altered.
    if generation.is_some() || !grants.is_empty() {
        let generation = generation.unwrap_or(0);
        let _ = tx.send(Message::GrantClaims { generation, grants }).await;
    }
}

/// The mirror as stored (expired grants too: the recorder compares the
/// list with the one it sent), and the generation it came as.
async fn mirrored_grants(
    cloud: &Cloud,
    site: &str,
) -> Result<(Option<u64>, Vec<candor_link::GrantNote>), crate::db::DbError> {
    let generation = cloud
        .db
        .query_one(
            "SELECT grants_generation FROM site WHERE id = $1",
            vec![site.into()],
        )
        .await?
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten()
        .map(|g| g as u64);
    let rows = cloud
        .db
        .query(
            "SELECT id, technician, org, scopes, expires FROM site_grant \
             WHERE site = $1 ORDER BY id LIMIT $2",
            vec![site.into(), (candor_link::MAX_GRANTS as i64).into()],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(candor_link::GrantNote {
            id: r.int(0)? as u64,
            technician: r.text(1)?,
            org: r.text(2)?,
            scopes: r
                .text(3)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            expires_at: r.int(4)?,
        });
    }
    Ok((generation, out))
}

/// Replaces the site's mirrored grants with what its recorder reported.
async fn mirror_grants(
    cloud: &Cloud,
    site: &str,
    generation: u64,
    grants: &[candor_link::GrantNote],
) -> Result<(), crate::db::DbError> {
    cloud
        .db
        .exec("DELETE FROM site_grant WHERE site = $1", vec![site.into()])
        .await?;
    for g in grants {
        cloud
            .db
            .exec(
                "INSERT INTO site_grant (site, id, technician, org, scopes, expires) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site, id) DO NOTHING",
                vec![
                    site.into(),
                    i64::try_from(g.id).unwrap_or(i64::MAX).into(),
                    g.technician.as_str().into(),
                    g.org.as_str().into(),
                    g.scopes.join(",").into(),
                    g.expires_at.into(),
                ],
            )
            .await?;
    }
    cloud
        .db
        .exec(
            "UPDATE site SET grants_generation = $1 WHERE id = $2",
            vec![
                i64::try_from(generation).unwrap_or(i64::MAX).into(),
                site.into(),
            ],
        )
        .await?;
    Ok(())
}

async fn on_site_message(
    cloud: &Cloud,
    site: &str,
    conn: u64,
    account: &str,
    m: Message,
) -> Result<Option<Message>, String> {
    let db = |e: crate::db::DbError| e.to_string();
    match m {
        Message::Hello {
            sharing,
            remote,
            software,
            ..
        } => {
            let s = serde_json::to_value(sharing)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            cloud
                .db
                .exec(
                    "UPDATE site SET sharing = $1, remote = $2, software = $3 WHERE id = $4",
                    vec![
                        s.into(),
                        i64::from(remote).into(),
                        software.into(),
                        site.into(),
                    ],
                )
                .await
                .map_err(db)?;
            if let Ok(Some(j)) = cloud.site_json(site).await {
                cloud.notify(account, Notice::Site { site: j });
            }
            // Streams open only while the recorder allows them, and only
            // with a zone to reach it by.
            let zone = cloud.config.remote_zone.clone();
            let label = {
                let ends = cloud.remote.lock().unwrap_or_else(|e| e.into_inner());
                // This link's entry only: a superseded session of the same
                // key must not switch the newer one's access or cut it.
                ends.iter().find(|(_, e)| e.conn == conn).map(|(l, e)| {
                    let was = e.allowed.swap(
                        remote && zone.is_some(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    if was && !(remote && zone.is_some()) {
                        e.cut();
                    }
                    l.clone()
                })
            };
            Ok(match (remote, zone, label) {
                (true, Some(zone), Some(label)) => Some(Message::Remote {
                    acme: cloud.dns.is_some(),
                    host: format!("{label}.{zone}"),
                    port: cloud
                        .config
                        .remote_port
                        .unwrap_or(cloud.config.listen.port()),
                }),
                _ => None,
            })
        }
        m @ Message::Status { .. } => {
            let mut j = serde_json::to_value(&m).map_err(|e| e.to_string())?;
            if let Some(o) = j.as_object_mut() {
                o.remove("type");
                o.insert("at".into(), crate::ts(now()).into());
            }
            cloud
                .db
                .exec(
                    "UPDATE site SET status = $1 WHERE id = $2",
                    vec![j.to_string().into(), site.into()],
                )
                .await
                .map_err(db)?;
            if let Ok(Some(j)) = cloud.site_json(site).await {
                cloud.notify(account, Notice::Site { site: j });
            }
            Ok(None)
        }
        Message::Alarm {
            id,
            at,
            late,
            camera,
            kind,
        } => {
            let id_i = i64::try_from(id).map_err(|_| "alarm id out of range")?;
            // Stored once: a resend after a lost confirmation hits the key.
            let inserted = cloud
                .db
                .exec(
                    "INSERT INTO alarm (site, id, at, received, late, camera, kind) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site, id) DO NOTHING",
                    vec![
                        site.into(),
                        id_i.into(),
                        at.clone().into(),
                        now().into(),
                        i64::from(late).into(),
                        camera.clone().into(),
                        kind.clone().into(),
                    ],
                )
                .await
                .map_err(db)?;
            if inserted > 0 && id_i % 100 == 0 {
                // A site keeps its newest alarms only: even a fake recorder
                // sending alarms without end holds a bounded share of the
                // database (its own site's rows, nobody else's).
                cloud
                    .db
                    .exec(
                        "DELETE FROM alarm WHERE site = $1 AND id < $2",
                        vec![site.into(), id_i.saturating_sub(MAX_ALARMS_PER_SITE).into()],
                    )
                    .await
                    .map_err(db)?;
            }
            if inserted > 0 {
                // A tapped notification opens the event on the recorder
                // itself, through remote access, when it is on.
                let (name, open) = site_and_address(cloud, site).await;
                let open = open.map(|u| format!("{u}#alarm={id}"));
                let alarm = candor_wire::cloud::Alarm {
                    site: site.to_owned(),
                    site_name: name,
                    id: id as i64,
                    at: at.clone(),
                    late,
                    camera: camera.clone(),
                    kind: kind.clone(),
                    acked_by: None,
                    ack_recorded: false,
                    received: crate::ts(now()),
                };
                cloud.notify(
                    account,
                    Notice::Alarm {
                        alarm: alarm.clone(),
                    },
                );
                if cloud.push.may_push(site) {
                    cloud.push.alarm(account, alarm, open);
                } else {
                    tracing::warn!(
                        site,
                        "more alarms than pushes allowed this minute; stored, not pushed"
                    );
                }
            }
            Ok(Some(Message::AlarmStored { alarm: id }))
        }
        Message::AckRecorded { alarm } => {
            let id = i64::try_from(alarm).map_err(|_| "alarm id out of range")?;
            cloud
                .db
                .exec(
                    "UPDATE alarm SET ack_recorded = 1 WHERE site = $1 AND id = $2",
                    vec![site.into(), id.into()],
                )
                .await
                .map_err(db)?;
            cloud.notify(
                account,
                Notice::AckRecorded {
                    site: site.to_owned(),
                    id: alarm as i64,
                },
            );
            Ok(None)
        }
        Message::Pong { .. } => Ok(None),
        Message::Unpair {} => {
            unpair(cloud, site, account).await.map_err(db)?;
            Ok(Some(Message::Refused {
                code: Refusal::Unpaired,
                reason: "unpaired at the recorder's request".into(),
            }))
        }
        Message::PairStart { .. } | Message::PairConfirm { .. } => {
            Err("pairing messages on a paired link".into())
        }
        Message::AcmeDns { txt, caa } => Ok(Some(Message::AcmeDnsDone {
            error: acme_dns(cloud, site, conn, &txt, caa.as_ref()).await.err(),
        })),
        Message::Grants { generation, grants } => {
            mirror_grants(cloud, site, generation, &grants)
                .await
                .map_err(db)?;
            Ok(Some(Message::GrantsStored { generation }))
        }
        Message::AccessNotice {
            event,
            technician,
            org,
        } => {
            access_notice(cloud, site, account, event, &technician, &org).await;
            Ok(None)
        }
        other => Err(format!("unexpected {}", other.name())),
    }
}

/// A site's name, and where browsers reach its recorder through remote
/// access when that is on (for what a tapped notification opens).
async fn site_and_address(cloud: &Cloud, site: &str) -> (String, Option<String>) {
    let row = cloud
        .db
        .query_one(
            "SELECT name, label, remote FROM site WHERE id = $1",
            vec![site.into()],
        )
        .await
        .ok()
        .flatten();
    let name = row
        .as_ref()
        .and_then(|r| r.text(0).ok())
        .unwrap_or_default();
    let open = row.as_ref().and_then(|r| {
        crate::remote_url(
            &cloud.config,
            r.opt_text(1).ok().flatten(),
            r.int(2).ok() == Some(1),
        )
    });
    (name, open)
}

/// Pushes a technician's request, arrival or departure to the site's
/// owner: their phone says it even when they are away from the recorder's
/// Access page. Counted with the site's alarm pushes.
async fn access_notice(
    cloud: &Cloud,
    site: &str,
    account: &str,
    event: candor_link::AccessEvent,
    technician: &str,
    org: &str,
) {
    use candor_link::AccessEvent;
    // A tap opens the recorder's Access page, through remote access.
    let (name, open) = site_and_address(cloud, site).await;
    let open = open.map(|u| format!("{u}#access"));
    let who = if org.is_empty() {
        technician.to_owned()
    } else {
        format!("{technician} ({org})")
    };
    let (title, body) = match event {
        AccessEvent::RequestWaiting => (
            format!("Access request for {name}"),
            format!("{who} asks for access. You decide on the recorder's Access page."),
        ),
        AccessEvent::Started => (
            format!("Technician at {name}"),
            format!("{who} signed in under the access you granted."),
        ),
        AccessEvent::Ended => (
            format!("Access ended at {name}"),
            format!("The access of {who} has ended."),
        ),
    };
    if cloud.push.may_push(site) {
        cloud.push.notice(
            account,
            candor_wire::cloud::PushPayload {
                title,
                body,
                site: site.to_owned(),
                alarm: 0,
                at: crate::ts(now()),
                late: false,
                url: open,
                kind: Some("access".into()),
            },
        );
    }
}

/// ACME DNS requests a link may make a minute: an issuance takes two
/// (publish, remove), and a recorder retries with backoff.
pub const ACME_PER_MINUTE: usize = 6;

/// Publishes a recorder's ACME answer and CAA record under its own label,
/// and only while its remote access is on.
async fn acme_dns(
    cloud: &Cloud,
    site: &str,
    conn: u64,
    txt: &[String],
    caa: Option<&candor_link::Caa>,
) -> Result<(), String> {
    let Some(zone) = &cloud.dns else {
        return Err(
            "this cloud does not serve DNS for remote access (no dns_listen in cloud.toml)".into(),
        );
    };
    let (label, end) = {
        let ends = cloud.remote.lock().unwrap_or_else(|e| e.into_inner());
        ends.iter()
            .find(|(_, e)| e.conn == conn)
            .map(|(l, e)| (l.clone(), e.clone()))
            .ok_or("remote access is not set up for this site")?
    };
    if !end.allowed.load(std::sync::atomic::Ordering::Relaxed) {
        return Err("remote access is off in this recorder's hello".into());
    }
    {
        let now = Instant::now();
        let mut all = cloud.acme_asked.lock().unwrap_or_else(|e| e.into_inner());
        let asked = all.entry(site.to_owned()).or_default();
        while asked
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            asked.pop_front();
        }
        if asked.len() >= ACME_PER_MINUTE {
            return Err(format!(
                "more than {ACME_PER_MINUTE} ACME DNS requests a minute; wait"
            ));
        }
        asked.push_back(now);
    }
    if let Some(c) = caa {
        let j = serde_json::to_string(c).map_err(|e| e.to_string())?;
        cloud
            .db
            .exec(
                "UPDATE site SET caa = $1 WHERE id = $2",
                vec![j.into(), site.into()],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    zone.set(&label, txt, caa).await?;
    tracing::info!(
        site,
        label,
        txt = txt.len(),
        caa = caa.is_some(),
        "ACME DNS records published"
    );
    Ok(())
}

/// Alarms kept per site (the newest; the app shows far fewer).
pub const MAX_ALARMS_PER_SITE: i64 = 10_000;

/// Final: the key is refused from now on, and the site's data goes.
pub async fn unpair(cloud: &Cloud, site: &str, account: &str) -> Result<(), crate::db::DbError> {
    if let Some(r) = cloud
        .db
        .query_one(
            "SELECT pubkey, label FROM site WHERE id = $1",
            vec![site.into()],
        )
        .await?
    {
        let key = r.bytes(0)?;
        // The name keeps no binding to the gone recorder's ACME account.
        cloud
            .acme_asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(site);
        if let (Some(zone), Some(label)) = (&cloud.dns, r.opt_text(1)?) {
            zone.remove_caa(&label).await;
            zone.clear_txt(&label).await;
        }
        cloud
            .db
            .exec(
                "INSERT INTO revoked_key (pubkey, at) VALUES ($1, $2) ON CONFLICT (pubkey) DO NOTHING",
                vec![Val::Bytes(key), now().into()],
            )
            .await?;
    }
    cloud
        .db
        .exec("DELETE FROM alarm WHERE site = $1", vec![site.into()])
        .await?;
    cloud
        .db
        .exec("DELETE FROM site WHERE id = $1", vec![site.into()])
        .await?;
    if let Some(o) = cloud
        .online
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(site)
    {
        let _ = o.tx.try_send(Message::Refused {
            code: Refusal::Unpaired,
            reason: "this recorder was unpaired in the cloud app".into(),
        });
    }
    cloud.notify(
        account,
        Notice::Unpaired {
            site: site.to_owned(),
        },
    );
    tracing::info!(site, "site unpaired");
    Ok(())
}

/// Forgets expired pairing codes.
pub async fn sweeper(cloud: Arc<Cloud>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let now = Instant::now();
        cloud
            .pairings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.expires > now);
    }
}

/// Closes links silent for longer than `offline_after_secs`.
pub async fn silence_sweeper(cloud: Arc<Cloud>) {
    let limit = cloud.config.offline_after_secs * 1000;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = crate::epoch_ms();
        for l in cloud
            .liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            if now.saturating_sub(l.last.load(std::sync::atomic::Ordering::Relaxed)) > limit {
                l.kill.notify_one();
            }
        }
    }
}
