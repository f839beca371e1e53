//! What a paired link decides, without I/O: which of the cloud's messages
//! the recorder acts on and how, when a status is due, which queued alarms
//! go out and with what detail. Fed messages, outbox rows and the time by
//! the I/O shell (`Link::linked`), it answers with [`Action`]s; the shell
//! only carries them out. Tests drive it with simulated time.

use candor_link::{Message, Refusal, Sharing};
use candor_media::Time90k;
use candor_storage::egress::Pending;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A status goes out on change (cameras, disk to the percent, the last
/// event), and at least this often.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Pings are answered at most this often; more come only from a cloud that
/// wants the recorder to write.
pub const PONG_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Cloud-caused work per minute (acknowledgements, sharing requests), each
/// an index write or a log line.
pub const CAUSED_PER_MINUTE: u32 = 10;

/// A link on which nothing arrives for this long is dead (the cloud pings
/// every 15 s).
pub const SILENT_AFTER: Duration = Duration::from_secs(45);

/// How long an ACME DNS request waits for the cloud's answer before another
/// may go (the ACME task itself gives up after 30 s).
pub const ACME_ANSWER: Duration = Duration::from_secs(35);

/// What the recorder does about one message from the cloud.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Nothing (a duplicate, an unknown alarm id, a rate-limited ping).
    None,
    /// The cloud welcomed this site: the link is up; send the outbox.
    Up,
    /// The alarm is stored in the cloud: mark it delivered, read the
    /// outbox again (a long outage queues more than one read takes).
    Delivered(i64),
    /// Record the acknowledgement on the alarm's event, then confirm with
    /// `AckRecorded`.
    Acknowledge { alarm: u64, by: String },
    /// Show the request to an admin; nothing changes until one decides.
    SharingRequest(Sharing),
    /// A technician's request for access: stored as a request for the
    /// admin's Access page; it grants nothing.
    AccessRequest(super::AccessRequest),
    /// The cloud's quote of this site's grants: compared with the store
    /// and every difference audited; it grants nothing.
    GrantClaims {
        generation: u64,
        grants: Vec<candor_link::GrantNote>,
    },
    /// The cloud stored this generation of the grants list.
    GrantsStored(u64),
    /// Answer the ping (ledgered as this hour's heartbeat row).
    Pong(u64),
    /// Too many cloud-caused requests this minute: say so once in a while.
    Throttled,
    /// The site was unpaired: forget the key and the pairing.
    Forget(String),
    /// Remote access is up: browsers reach this recorder at
    /// `https://{host}:{port}/` through the cloud.
    Remote { host: String, port: u16, acme: bool },
    /// The cloud answered this recorder's ACME DNS request.
    AcmeDnsDone(Option<String>),
    /// A browser waits at the cloud: make it a data connection.
    Dial { token: String, client: String },
    /// End this connection (and retry later), for this reason.
    End(String),
}

/// A budget of cloud-caused work per minute.
#[derive(Debug)]
pub struct Budget {
    window: Instant,
    used: u32,
}

impl Budget {
    pub fn new(now: Instant) -> Budget {
        Budget {
            window: now,
            used: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(60) {
            (self.window, self.used) = (now, 0);
        }
        self.used += 1;
        self.used <= CAUSED_PER_MINUTE
    }
}

/// The outbox payload: what the alarm message may carry, decided again at
/// send time against the sharing level then in force.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Queued {
    pub event: i64,
    pub camera: String,
    pub kind: String,
}

/// `<label>.<zone of at least two labels>`, the label being 8 base32
/// characters with at least one digit (as the cloud draws them), which no
/// word-like host name on a LAN ("recorder.home.arpa") matches.
fn remote_name(host: &str) -> bool {
    let mut labels = host.split('.');
    let first = labels.next().unwrap_or("");
    first.len() == 8
        && first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        && first.bytes().any(|b| b.is_ascii_digit())
        && labels.count() >= 2
}

/// One paired connection's state.
pub struct Linked {
    /// The site id this recorder was paired as.
    site: Option<String>,
    sharing: Sharing,
    private_alarms: bool,
    connected_at: Time90k,
    welcomed: bool,
    /// Alarm ids sent on this connection (never sent twice on it) …
    sent: HashSet<i64>,
    /// … and those of them not yet confirmed: each confirmation is acted on
    /// once, so a cloud repeating `alarm_stored` causes no index writes.
    awaiting: HashSet<i64>,
    last_pong: Option<Instant>,
    caused: Budget,
    /// Access requests have a budget of their own, so a flood of them
    /// can't starve the owner's acknowledgements.
    asked: Budget,
    last_heard: Instant,
    /// This link settled on data connections (ALPN `candor-link/1+dial`).
    dial: bool,
    seq: u64,
    last_status: Option<Message>,
    last_status_sent: Option<Instant>,
    /// This connection's hello allowed remote access …
    remote_asked: bool,
    /// … and the cloud said where browsers reach it: streams may open.
    remote_host: Option<String>,
    /// An ACME DNS request went out at this time and awaits its answer (one
    /// at a time; given up after [`ACME_ANSWER`]).
    acme_pending: Option<Instant>,
    /// The cloud quoted its grants on this connection (once is all it may).
    claims_heard: bool,
    /// Generations of the grants list sent on this connection and not yet
    /// confirmed: each confirmation is taken once.
    grants_awaiting: HashSet<u64>,
}

impl Linked {
    pub fn new(
        site: Option<String>,
        sharing: Sharing,
        private_alarms: bool,
        connected_at: Time90k,
        now: Instant,
    ) -> Linked {
        Linked {
            site,
            sharing,
            private_alarms,
            connected_at,
            welcomed: false,
            sent: HashSet::new(),
            awaiting: HashSet::new(),
            last_pong: None,
            caused: Budget::new(now),
            asked: Budget::new(now),
            last_heard: now,
            dial: false,
            seq: 0,
            last_status: None,
            last_status_sent: None,
            remote_asked: false,
            remote_host: None,
            acme_pending: None,
            claims_heard: false,
            grants_awaiting: HashSet::new(),
        }
    }

    pub fn welcomed(&self) -> bool {
        self.welcomed
    }

    /// The hello this connection sends allows remote access.
    pub fn ask_remote(&mut self) {
        self.remote_asked = true;
    }

    /// Whether a stream the cloud opens may be served: remote access was
    /// asked for on this connection, and the cloud answered with a name.
    pub fn streams_allowed(&self) -> bool {
        self.welcomed && self.remote_asked && self.remote_host.is_some()
    }

    /// The cloud said nothing for [`SILENT_AFTER`].
    pub fn silent(&self, now: Instant) -> bool {
        now.duration_since(self.last_heard) > SILENT_AFTER
    }

    /// One message from the cloud (already checked to be one it may send).
    /// The link's TLS settled on data connections: the cloud may send
    /// `dial`.
    pub fn set_dial(&mut self, on: bool) {
        self.dial = on;
    }

    pub fn on_message(&mut self, m: Message, now: Instant) -> Action {
        self.last_heard = now;
        match m {
            // Only on a link that settled on them, and only while the cloud
            // named this recorder for remote access on it (as for streams).
            Message::Dial { .. } if !self.dial => {
                Action::End("the cloud sent a dial on a link without data connections".into())
            }
            Message::Dial { token, client } if self.streams_allowed() => {
                Action::Dial { token, client }
            }
            Message::Dial { .. } => Action::None,
            Message::Welcome { site } => {
                if self.site.as_deref() != Some(site.as_str()) {
                    return Action::End(format!("the cloud welcomed site {site}, not this one"));
                }
                self.welcomed = true;
                Action::Up
            }
            // Only for alarms this connection sent, once each: anything else
            // would be index work a cloud could cause at will.
            Message::AlarmStored { alarm } if self.awaiting.remove(&(alarm as i64)) => {
                Action::Delivered(alarm as i64)
            }
            Message::AlarmStored { .. } => Action::None,
            Message::Acknowledge { .. } | Message::SharingRequest { .. }
                if !self.caused.take(now) =>
            {
                Action::Throttled
            }
            Message::AccessRequest { .. } if !self.asked.take(now) => Action::Throttled,
            Message::Acknowledge { alarm, by } => Action::Acknowledge { alarm, by },
            Message::SharingRequest { sharing } => Action::SharingRequest(sharing),
            Message::AccessRequest {
                technician,
                org,
                scopes,
                cameras,
                hours,
                reason,
            } => Action::AccessRequest(super::AccessRequest {
                technician,
                org,
                scopes,
                cameras,
                hours,
                reason,
            }),
            Message::Ping { nonce } => {
                if self
                    .last_pong
                    .is_some_and(|t| now.duration_since(t) < PONG_MIN_INTERVAL)
                {
                    return Action::None;
                }
                self.last_pong = Some(now);
                Action::Pong(nonce)
            }
            // The code decides, never the wording.
            Message::Refused {
                code: Refusal::Unpaired,
                reason,
            } => Action::Forget(format!("the cloud says: {reason}")),
            Message::Refused { reason, .. } => Action::End(format!("the cloud refused: {reason}")),
            // Once, after the welcome, and only if this side asked.
            // The cloud's label format (8 base32 characters, then the zone):
            // never a name the recorder answers to on its own network.
            Message::Remote { host, port, acme }
                if self.welcomed
                    && self.remote_asked
                    && self.remote_host.is_none()
                    && remote_name(&host) =>
            {
                self.remote_host = Some(host.clone());
                Action::Remote { host, port, acme }
            }
            // Once per connection, after the welcome: more would be audit
            // entries a cloud could write at will.
            Message::GrantClaims { generation, grants } if self.welcomed && !self.claims_heard => {
                self.claims_heard = true;
                Action::GrantClaims { generation, grants }
            }
            Message::GrantsStored { generation } if self.grants_awaiting.remove(&generation) => {
                Action::GrantsStored(generation)
            }
            Message::GrantsStored { .. } => Action::None,
            Message::AcmeDnsDone { error } if self.acme_pending.is_some() => {
                self.acme_pending = None;
                Action::AcmeDnsDone(error)
            }
            other => Action::End(format!("unexpected {} from the cloud", other.name())),
        }
    }

    /// A grants list of this generation went out on this connection.
    pub fn grants_sent(&mut self, generation: u64) {
        // Bounded: a list goes out per change, and the cloud confirms each.
        if self.grants_awaiting.len() < 64 {
            self.grants_awaiting.insert(generation);
        }
    }

    /// Whether an ACME DNS request may go now: only once the cloud named
    /// this recorder on this connection, and one at a time. Marks it sent.
    pub fn acme_ask(&mut self, now: Instant) -> Result<(), &'static str> {
        if self.remote_host.is_none() {
            return Err("the cloud has not named this recorder on this connection");
        }
        if self
            .acme_pending
            .is_some_and(|t| now.duration_since(t) < ACME_ANSWER)
        {
            return Err("a DNS request is already waiting for the cloud");
        }
        self.acme_pending = Some(now);
        Ok(())
    }

    /// The alarm messages for outbox rows, oldest first, each sent once per
    /// connection. Camera and kind go only at `health_and_events` without
    /// `private_alarms` (the sharing level in force now, not when queued).
    pub fn alarms(&mut self, pending: &[Pending]) -> Vec<(i64, Message)> {
        let detail = self.sharing == Sharing::HealthAndEvents && !self.private_alarms;
        pending
            .iter()
            .filter(|p| self.sent.insert(p.id) && self.awaiting.insert(p.id))
            .map(|p| {
                let q: Option<Queued> = serde_json::from_str(&p.payload).ok();
                let q = q.filter(|_| detail);
                let m = Message::Alarm {
                    id: p.id as u64,
                    at: p.at.to_timestamp().to_string(),
                    late: p.at < self.connected_at || p.attempts > 0,
                    camera: q.as_ref().map(|q| q.camera.clone()),
                    kind: q.map(|q| q.kind),
                };
                (p.id, m)
            })
            .collect()
    }

    /// Whether a status is due, given one just made (`fresh`, without the
    /// slow footage figure): on change, or every [`STATUS_EVERY`]. If so,
    /// returns the sequence number to send it with.
    pub fn status_due(&mut self, fresh: &Message, now: Instant) -> Option<u64> {
        if !self.welcomed {
            return None;
        }
        let changed = match (fresh, &self.last_status) {
            (
                Message::Status {
                    cameras: a,
                    disk_used_percent: d1,
                    last_event_at: e1,
                    certificate: c1,
                    ..
                },
                Some(Message::Status {
                    cameras: b,
                    disk_used_percent: d2,
                    last_event_at: e2,
                    certificate: c2,
                    ..
                }),
            ) => a != b || d1.map(|d| d as i32) != d2.map(|d| d as i32) || e1 != e2 || c1 != c2,
            _ => true,
        };
        let stale = self
            .last_status_sent
            .is_none_or(|t| now.duration_since(t) >= STATUS_EVERY);
        (changed || stale).then(|| self.seq + 1)
    }

    /// The status that went out (with `seq` from [`Self::status_due`]).
    pub fn status_sent(&mut self, sent: Message, seq: u64, now: Instant) {
        self.seq = seq;
        self.last_status = Some(sent);
        self.last_status_sent = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_dns_answers_are_taken_only_for_a_request_in_flight() {
        let t = Instant::now();
        let mut l = Linked::new(Some("s1".into()), Sharing::Health, false, Time90k(0), t);
        l.ask_remote();
        l.on_message(Message::Welcome { site: "s1".into() }, t);
        let done = || Message::AcmeDnsDone { error: None };
        assert!(
            l.acme_ask(t).is_err(),
            "not before the cloud named this recorder"
        );
        l.on_message(
            Message::Remote {
                host: "abcd2345.remote.example.com".into(),
                port: 443,
                acme: false,
            },
            t,
        );
        assert!(l.acme_ask(t).is_ok());
        assert!(
            l.acme_ask(t + Duration::from_secs(5)).is_err(),
            "one at a time"
        );
        assert!(matches!(l.on_message(done(), t), Action::AcmeDnsDone(None)));
        // An answer nobody asked for ends the connection.
        assert!(matches!(l.on_message(done(), t), Action::End(_)));
        // A cloud that never answers does not block requests for ever.
        assert!(l.acme_ask(t).is_ok());
        assert!(l.acme_ask(t + ACME_ANSWER).is_ok());
    }

    #[test]
    fn streams_open_only_after_this_side_asked_and_the_cloud_named_it() {
        let t = Instant::now();
        let remote = || Message::Remote {
            host: "abcd2345.remote.example.com".into(),
            port: 443,
            acme: false,
        };
        let mut l = Linked::new(Some("s1".into()), Sharing::Health, false, Time90k(0), t);
        l.on_message(Message::Welcome { site: "s1".into() }, t);
        // Not asked: a cloud that offers remote access ends the connection.
        assert!(matches!(l.on_message(remote(), t), Action::End(_)));
        assert!(!l.streams_allowed());
        let mut l = Linked::new(Some("s1".into()), Sharing::Health, false, Time90k(0), t);
        l.ask_remote();
        assert!(
            matches!(l.on_message(remote(), t), Action::End(_)),
            "before the welcome"
        );
        let mut l = Linked::new(Some("s1".into()), Sharing::Health, false, Time90k(0), t);
        l.ask_remote();
        l.on_message(Message::Welcome { site: "s1".into() }, t);
        assert!(!l.streams_allowed());
        // No remote name yet: a dial does nothing.
        l.set_dial(true);
        assert_eq!(
            l.on_message(
                Message::Dial {
                    token: "ab".repeat(32),
                    client: "192.0.2.1:443".into(),
                },
                t
            ),
            Action::None
        );
        assert!(matches!(
            l.on_message(remote(), t),
            Action::Remote { port: 443, .. }
        ));
        assert!(l.streams_allowed());
        // A dial: only on a link that settled on data connections.
        let dial = || Message::Dial {
            token: "ab".repeat(32),
            client: "192.0.2.1:443".into(),
        };
        assert!(matches!(l.on_message(dial(), t), Action::Dial { .. }));
        l.set_dial(false);
        assert!(matches!(l.on_message(dial(), t), Action::End(_)));
        l.set_dial(true);
        // Once: a second name would move the certificate under the owner.
        assert!(matches!(l.on_message(remote(), t), Action::End(_)));
        // Only the cloud's label format: never a LAN name.
        for host in [
            "nas.local",
            "abcd2345.lan",
            "recorder.example.com",
            "recorder.home.arpa",
            "abcd2341.remote.example.com",
        ] {
            let mut l = Linked::new(Some("s1".into()), Sharing::Health, false, Time90k(0), t);
            l.ask_remote();
            l.on_message(Message::Welcome { site: "s1".into() }, t);
            let m = Message::Remote {
                host: host.into(),
                port: 443,
                acme: false,
            };
            assert!(matches!(l.on_message(m, t), Action::End(_)), "{host}");
        }
    }
    use candor_link::CameraHealth;

    fn linked(sharing: Sharing, now: Instant) -> Linked {
        Linked::new(
            Some("s1".into()),
            sharing,
            false,
            Time90k(1_000 * 90_000),
            now,
        )
    }

    fn pending(id: i64, at_secs: i64, attempts: u32) -> Pending {
        Pending {
            id,
            at: Time90k(at_secs * 90_000),
            payload: r#"{"event":1,"camera":"gate","kind":"motion"}"#.into(),
            attempts,
        }
    }

    fn status(streaming: bool, disk: f32) -> Message {
        Message::Status {
            seq: 0,
            cameras: Some(vec![CameraHealth {
                name: "gate".into(),
                streaming,
                recording: streaming,
            }]),
            disk_used_percent: Some(disk),
            footage_days: None,
            last_event_at: None,
            footage_target_days: None,
            certificate: None,
        }
    }

    #[test]
    fn only_this_sites_welcome_opens_the_link() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        let wrong = l.on_message(Message::Welcome { site: "s2".into() }, t);
        assert!(matches!(wrong, Action::End(_)));
        assert!(!l.welcomed());
        assert_eq!(
            l.on_message(Message::Welcome { site: "s1".into() }, t),
            Action::Up
        );
        assert!(l.welcomed());
    }

    #[test]
    fn the_clouds_grant_quote_is_taken_once_per_connection_after_the_welcome() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        let quote = || Message::GrantClaims {
            generation: 3,
            grants: vec![],
        };
        assert!(matches!(l.on_message(quote(), t), Action::End(_)));
        let mut l = linked(Sharing::Health, t);
        l.on_message(Message::Welcome { site: "s1".into() }, t);
        assert_eq!(
            l.on_message(quote(), t),
            Action::GrantClaims {
                generation: 3,
                grants: vec![]
            }
        );
        assert!(matches!(l.on_message(quote(), t), Action::End(_)));
        // A confirmation counts only for a list sent on this connection, once.
        let stored = |g| Message::GrantsStored { generation: g };
        assert_eq!(l.on_message(stored(7), t), Action::None);
        l.grants_sent(7);
        assert_eq!(l.on_message(stored(7), t), Action::GrantsStored(7));
        assert_eq!(l.on_message(stored(7), t), Action::None);
    }

    #[test]
    fn only_alarms_sent_on_this_connection_can_be_confirmed() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        assert_eq!(
            l.on_message(Message::AlarmStored { alarm: 7 }, t),
            Action::None
        );
        let sent = l.alarms(&[pending(7, 1_100, 0)]);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            l.on_message(Message::AlarmStored { alarm: 7 }, t),
            Action::Delivered(7)
        );
        // Confirmed once: a cloud repeating it causes nothing.
        for _ in 0..1000 {
            assert_eq!(
                l.on_message(Message::AlarmStored { alarm: 7 }, t),
                Action::None
            );
        }
        // The same rows read again are not sent again.
        assert!(l.alarms(&[pending(7, 1_100, 0)]).is_empty());
    }

    #[test]
    fn alarms_carry_detail_only_at_health_and_events_and_say_when_late() {
        let t = Instant::now();
        let mut plain = linked(Sharing::Health, t);
        let m = plain.alarms(&[
            pending(1, 900, 0),
            pending(2, 1_100, 0),
            pending(3, 1_100, 2),
        ]);
        let late: Vec<bool> = m
            .iter()
            .map(|(_, m)| matches!(m, Message::Alarm { late: true, .. }))
            .collect();
        // Queued before this connection, or tried before: late.
        assert_eq!(late, [true, false, true]);
        assert!(matches!(
            &m[1].1,
            Message::Alarm {
                camera: None,
                kind: None,
                ..
            }
        ));
        let mut detailed = linked(Sharing::HealthAndEvents, t);
        let m = detailed.alarms(&[pending(1, 1_100, 0)]);
        assert!(
            matches!(&m[0].1, Message::Alarm { camera: Some(c), kind: Some(k), .. } if c == "gate" && k == "motion")
        );
        let mut private = Linked::new(
            Some("s1".into()),
            Sharing::HealthAndEvents,
            true,
            Time90k(0),
            t,
        );
        let m = private.alarms(&[pending(1, 1_100, 0)]);
        assert!(matches!(
            &m[0].1,
            Message::Alarm {
                camera: None,
                kind: None,
                ..
            }
        ));
    }

    #[test]
    fn pings_are_answered_at_most_every_5_s() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        let answered = (0..100u64)
            .filter(|&i| {
                let now = t + Duration::from_millis(i * 100);
                matches!(
                    l.on_message(Message::Ping { nonce: i }, now),
                    Action::Pong(_)
                )
            })
            .count();
        // 10 s of pings every 100 ms: at 0 s and 5 s.
        assert_eq!(answered, 2);
    }

    #[test]
    fn cloud_caused_work_is_budgeted_per_minute() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        let ack = |alarm| Message::Acknowledge {
            alarm,
            by: "x".into(),
        };
        let done = (0..50)
            .filter(|&i| matches!(l.on_message(ack(i), t), Action::Acknowledge { .. }))
            .count();
        assert_eq!(done as u32, CAUSED_PER_MINUTE);
        assert_eq!(l.on_message(ack(99), t), Action::Throttled);
        // A minute later the budget is back.
        let later = t + Duration::from_secs(61);
        assert!(matches!(
            l.on_message(ack(100), later),
            Action::Acknowledge { .. }
        ));
    }

    #[test]
    fn a_refusal_forgets_the_pairing_only_for_the_unpaired_code() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        let said = |code, reason: &str| Message::Refused {
            code,
            reason: reason.into(),
        };
        assert!(matches!(
            l.on_message(said(Refusal::Unpaired, "bye"), t),
            Action::Forget(_)
        ));
        assert!(matches!(
            l.on_message(said(Refusal::Other, "you were unpaired, really"), t),
            Action::End(_)
        ));
    }

    #[test]
    fn status_goes_out_on_change_and_every_30_s() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        assert_eq!(
            l.status_due(&status(true, 50.2), t),
            None,
            "not before the welcome"
        );
        l.on_message(Message::Welcome { site: "s1".into() }, t);
        let seq = l.status_due(&status(true, 50.2), t).expect("the first one");
        l.status_sent(status(true, 50.2), seq, t);
        let t1 = t + Duration::from_secs(2);
        assert_eq!(l.status_due(&status(true, 50.7), t1), None, "same percent");
        assert_eq!(
            l.status_due(&status(false, 50.7), t1),
            Some(seq + 1),
            "a camera went down"
        );
        assert_eq!(
            l.status_due(&status(true, 51.0), t1),
            Some(seq + 1),
            "a percent more"
        );
        let t30 = t + STATUS_EVERY;
        assert_eq!(
            l.status_due(&status(true, 50.2), t30),
            Some(seq + 1),
            "30 s passed"
        );
    }

    #[test]
    fn a_silent_cloud_is_noticed_after_45_s() {
        let t = Instant::now();
        let mut l = linked(Sharing::Health, t);
        assert!(!l.silent(t + SILENT_AFTER));
        assert!(l.silent(t + SILENT_AFTER + Duration::from_secs(1)));
        l.on_message(Message::Ping { nonce: 1 }, t + SILENT_AFTER);
        assert!(!l.silent(t + SILENT_AFTER + Duration::from_secs(1)));
    }
}
