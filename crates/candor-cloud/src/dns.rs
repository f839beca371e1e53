//! The remote zone's authoritative DNS server (docs/design/remote.md,
//! "Certificates").
//!
//! It answers for `remote_zone` only: every `<label>.<zone>` resolves to
//! the cloud's own addresses (`remote_addresses`), and a recorder's ACME
//! DNS-01 answer and CAA record appear under its own label while it asks.
//! Publishing those two on a recorder's request over its link is the only
//! thing the cloud does for certificates: it never sees a recorder's key.
//!
//! hickory's in-memory zone and server do the protocol (UDP and TCP,
//! NXDOMAIN, SOA in negative answers, no zone transfers); this module only
//! keeps the records.

use candor_link::Caa;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::caa::KeyValue;
use hickory_server::proto::rr::rdata::{A, AAAA, CAA, NS, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// TTLs: challenge answers change within minutes and must not be cached
/// for long; addresses and CAA rarely change.
const TXT_TTL: u32 = 60;
const ADDRESS_TTL: u32 = 300;
const CAA_TTL: u32 = 300;
/// Negative answers are cached this long (the SOA minimum): a challenge
/// asked for before it was published is seen soon after.
const NEGATIVE_TTL: u32 = 30;
/// A TCP connection lasts at most this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// DNS over TCP connections at once, in all and per client address
/// (resolvers fall back to TCP only for answers too large for UDP, which
/// this zone does not have).
pub const TCP_MAX: usize = 256;
pub const TCP_PER_ADDRESS: usize = 8;

type Handler = InMemoryZoneHandler<TokioRuntimeProvider>;

pub struct Zone {
    handler: Arc<Handler>,
    origin: Name,
    addresses: Vec<IpAddr>,
    serial: AtomicU32,
}

impl Zone {
    /// The zone with its SOA, NS and the wildcard addresses. `zone` was
    /// checked by the config (lowercase labels).
    pub fn new(zone: &str, addresses: &[IpAddr]) -> Result<Zone, String> {
        let origin = Name::from_ascii(format!("{zone}.")).map_err(|e| e.to_string())?;
        let ns = child("ns", &origin)?;
        let hostmaster = child("hostmaster", &origin)?;
        // A serial that grows across restarts without being stored.
        let serial = (crate::now() as u64 % u64::from(u32::MAX)) as u32;
        let mut h = Handler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            ns.clone(),
            hostmaster,
            serial,
            3600,
            600,
            86_400,
            NEGATIVE_TTL,
        );
        h.upsert_mut(
            Record::from_rdata(origin.clone(), NEGATIVE_TTL, RData::SOA(soa)),
            serial,
        );
        h.upsert_mut(
            Record::from_rdata(origin.clone(), ADDRESS_TTL, RData::NS(NS(ns.clone()))),
            serial,
        );
        let wildcard = child("*", &origin)?;
        for name in [&origin, &ns, &wildcard] {
            for r in address_records(name, addresses) {
                h.upsert_mut(r, serial);
            }
        }
        Ok(Zone {
            handler: Arc::new(h),
            origin,
            addresses: addresses.to_vec(),
            serial: serial.into(),
        })
    }

    /// Serves the zone on `udp` and `tcp` until the process ends. TCP
    /// connections pass a gate first ([`TCP_MAX`] in all, [`TCP_PER_ADDRESS`]
    /// per address, [`TCP_IDLE`] each): hickory's own TCP server takes any
    /// number, and every one costs a file descriptor the links and the
    /// relay share. Admitted ones are spliced to hickory on loopback.
    pub async fn serve(
        &self,
        udp: tokio::net::UdpSocket,
        tcp: tokio::net::TcpListener,
    ) -> std::io::Result<Server<Catalog>> {
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&self.origin),
            vec![self.handler.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        let inner = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let inner_addr = inner.local_addr()?;
        server.register_listener(inner, TCP_IDLE, 4096);
        let gate = candor_auth::conn::ConnGate::new(candor_auth::conn::Limits {
            max_connections: TCP_MAX,
            max_per_address: TCP_PER_ADDRESS,
            ..Default::default()
        });
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Some(place) = gate.admit(peer.ip()) else {
                    continue;
                };
                tokio::spawn(async move {
                    let _place = place;
                    if let Ok(mut to) = tokio::net::TcpStream::connect(inner_addr).await {
                        // A query and its answer are a few hundred bytes:
                        // the whole exchange gets the idle time, once.
                        let _ = tokio::time::timeout(
                            TCP_IDLE,
                            tokio::io::copy_bidirectional(&mut conn, &mut to),
                        )
                        .await;
                    }
                });
            }
        });
        Ok(server)
    }

    /// `<label>.<zone>`'s ACME answer (`txt`, empty to remove) and CAA
    /// record (`None` to leave it as it is; see [`Zone::remove_caa`]).
    pub async fn set(&self, label: &str, txt: &[String], caa: Option<&Caa>) -> Result<(), String> {
        let host = self.name(label)?;
        let challenge = child("_acme-challenge", &host)?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let mut records = Vec::new();
        // A name with records of its own is no longer covered by the
        // wildcard (RFC 4592), nor is the one above a challenge: both get
        // the addresses explicitly.
        records.extend(address_records(&host, &self.addresses));
        records.extend(txt.iter().map(|t| {
            Record::from_rdata(
                challenge.clone(),
                TXT_TTL,
                RData::TXT(TXT::new(vec![t.clone()])),
            )
        }));
        if let Some(c) = caa {
            records.push(caa_record(&host, c)?);
        }
        // Replaced under one lock: a resolver never sees the name without
        // its CAA record, or the challenge half-published.
        let mut sets: std::collections::BTreeMap<RrKey, RecordSet> = Default::default();
        for r in records {
            let key = RrKey::new(LowerName::new(&r.name), r.record_type());
            sets.entry(key)
                .or_insert_with(|| RecordSet::new(r.name.clone(), r.record_type(), serial))
                .insert(r, serial);
        }
        let mut all = self.handler.records_mut().await;
        all.remove(&RrKey::new(LowerName::new(&challenge), RecordType::TXT));
        if caa.is_some() {
            all.remove(&RrKey::new(LowerName::new(&host), RecordType::CAA));
        }
        for (k, set) in sets {
            all.insert(k, Arc::new(set));
        }
        Ok(())
    }

    /// The label's challenge answer goes when its recorder's link does.
    pub async fn clear_txt(&self, label: &str) {
        if let Ok(host) = self.name(label)
            && let Ok(challenge) = child("_acme-challenge", &host)
        {
            self.handler
                .records_mut()
                .await
                .remove(&RrKey::new(LowerName::new(&challenge), RecordType::TXT));
        }
    }

    /// A site deleted: its name keeps no CAA binding to a gone account.
    pub async fn remove_caa(&self, label: &str) {
        if let Ok(host) = self.name(label) {
            self.handler
                .records_mut()
                .await
                .remove(&RrKey::new(LowerName::new(&host), RecordType::CAA));
        }
    }

    fn name(&self, label: &str) -> Result<Name, String> {
        child(label, &self.origin)
    }
}

/// `label.parent`.
fn child(label: &str, parent: &Name) -> Result<Name, String> {
    Name::from_ascii(label)
        .and_then(|n| n.append_domain(parent))
        .map_err(|e| e.to_string())
}

fn address_records(name: &Name, addresses: &[IpAddr]) -> Vec<Record> {
    addresses
        .iter()
        .map(|a| {
            let data = match a {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            Record::from_rdata(name.clone(), ADDRESS_TTL, data)
        })
        .collect()
}

/// `0 issue "<issuer>; accounturi=<account>; validationmethods=dns-01"`.
fn caa_record(host: &Name, c: &Caa) -> Result<Record, String> {
    let issuer = Name::from_ascii(&c.issuer).map_err(|e| e.to_string())?;
    let caa = CAA::new_issue(
        false,
        Some(issuer),
        vec![
            KeyValue::new("accounturi", c.account.clone()),
            KeyValue::new("validationmethods", "dns-01"),
        ],
    );
    Ok(Record::from_rdata(host.clone(), CAA_TTL, RData::CAA(caa)))
}
