//! Event changes, fanned out to integrations (MQTT, webhooks, the web app's
//! live feed, the cloud link). A broadcast channel: a slow integration loses
//! messages (and says so), it never slows the producer.

use candor_media::Time90k;
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The event began.
    Start,
    /// Something was added to an ongoing event (its snapshot).
    Update,
    /// The event ended (`end` is set).
    End,
}

impl Phase {
    /// The `type` field of event messages (MQTT, webhooks, SSE).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "new",
            Phase::Update => "update",
            Phase::End => "end",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventChange {
    pub id: i64,
    pub camera: String,
    /// `motion`, `object`, `tamper`, `input`.
    pub kind: &'static str,
    /// `motion` or `object` (Candor's detectors) or `onvif` (the camera).
    pub source: &'static str,
    pub phase: Phase,
    pub start: Time90k,
    /// Set when this change ends the event.
    pub end: Option<Time90k>,
    pub detail: Option<String>,
    pub score: Option<f64>,
    pub zone: Option<String>,
    /// The event's snapshot (JPEG), when this change brings one.
    pub snapshot: Option<bytes::Bytes>,
    /// The event has a snapshot (this change may or may not carry it).
    pub has_snapshot: bool,
    /// As the index has it when the change is sent (an operator may pin an
    /// ongoing event, the cloud app acknowledge it): see [`Self::stored`].
    pub pinned: bool,
    pub acked: Option<(String, Time90k)>,
    /// The event raises alarms (the cloud's push, webhooks). Everything is
    /// still published on MQTT and the live feed, marked.
    pub alarm: bool,
    /// An object event's object, as of this change …
    pub object: Option<ObjectInfo>,
    /// … and as of the previous one (Frigate's `before`).
    pub before: Option<ObjectInfo>,
}

/// An object as its event's messages describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub label: &'static str,
    /// This look's score, and the best so far (0..1).
    pub score: f32,
    pub top_score: f32,
    /// The best box so far, `[x, y, w, h]` in 0..1.
    pub bbox: [f32; 4],
    /// Zones it stands in now, and every zone it entered.
    pub current_zones: Vec<String>,
    pub zones: Vec<String>,
    pub stationary: bool,
    /// When the frame this describes arrived.
    pub frame: Time90k,
}

impl EventChange {
    /// A change with nothing but who, what and when: the other fields at
    /// their usual values (no end, detail, score, zone or snapshot; an
    /// alarm; not an object). Producers set the rest.
    pub fn new(
        id: i64,
        camera: String,
        kind: &'static str,
        source: &'static str,
        phase: Phase,
        start: Time90k,
    ) -> EventChange {
        EventChange {
            id,
            camera,
            kind,
            source,
            phase,
            start,
            end: None,
            detail: None,
            score: None,
            zone: None,
            snapshot: None,
            has_snapshot: false,
            pinned: false,
            acked: None,
            alarm: true,
            object: None,
            before: None,
        }
    }

    /// The message every integration sends (MQTT, webhooks, the live feed):
    /// the same [`candor_wire::Event`] as the API and `candor events --json`,
    /// as it stands at this change. The snapshot itself is not included (MQTT sends it on
    /// its own topic; HTTP clients fetch it by id).
    pub fn message(&self) -> candor_wire::EventMessage {
        candor_wire::EventMessage {
            phase: match self.phase {
                Phase::Start => candor_wire::EventPhase::New,
                Phase::Update => candor_wire::EventPhase::Update,
                Phase::End => candor_wire::EventPhase::End,
            },
            event: candor_wire::Event {
                id: self.id,
                camera: self.camera.clone(),
                kind: self.kind.to_owned(),
                source: self.source.to_owned(),
                start: self.start.to_string(),
                end: self.end.map(|t| t.to_string()),
                score: self.score,
                zone: self.zone.clone(),
                detail: self.detail.clone(),
                snapshot: self.has_snapshot || self.snapshot.is_some(),
                pinned: self.pinned,
                acked_by: self.acked.as_ref().map(|a| a.0.clone()),
                acked_at: self.acked.as_ref().map(|a| a.1.to_string()),
                label: self.object.as_ref().map(|o| o.label.to_owned()),
                bbox: self.object.as_ref().map(|o| round_box(o.bbox)),
                zones: self
                    .object
                    .as_ref()
                    .map(|o| o.zones.clone())
                    .unwrap_or_default(),
            },
            alarm: self.alarm,
            before: self.before.as_ref().map(|o| self.frigate(o)),
            after: self.object.as_ref().map(|o| self.frigate(o)),
        }
    }

    fn frigate(&self, o: &ObjectInfo) -> candor_wire::FrigateEvent {
        let unix = |t: Time90k| t.0 as f64 / 90_000.0;
        candor_wire::FrigateEvent {
            id: self.id.to_string(),
            camera: self.camera.clone(),
            label: o.label.to_owned(),
            score: f64::from(o.score),
            top_score: f64::from(o.top_score),
            start_time: unix(self.start),
            end_time: self.end.map(unix),
            frame_time: unix(o.frame),
            bbox: round_box(o.bbox),
            current_zones: o.current_zones.clone(),
            entered_zones: o.zones.clone(),
            has_snapshot: self.has_snapshot || self.snapshot.is_some(),
            has_clip: true,
            stationary: o.stationary,
            false_positive: false,
        }
    }

    /// Takes what the index says of the event now (pinned, acknowledged,
    /// snapshot), so an `end` message agrees with `GET /api/v1/events`.
    /// Blocking (one indexed read): call it off the async workers.
    pub fn stored(mut self, store: &candor_storage::Store) -> EventChange {
        if let Ok(Some(e)) = store.event(self.id) {
            self.pinned = e.pinned;
            self.acked = e.acked;
            self.has_snapshot |= e.snapshot;
        }
        self
    }

    /// [`Self::message`] as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.message()).unwrap_or_default()
    }
}

fn round_box(b: [f32; 4]) -> [f64; 4] {
    b.map(|v| (f64::from(v) * 10_000.0).round() / 10_000.0)
}

pub type EventBus = broadcast::Sender<EventChange>;

pub fn bus() -> EventBus {
    broadcast::channel(256).0
}
