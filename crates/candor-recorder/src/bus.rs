//! Event changes, fanned out to integrations (MQTT now; webhooks, the web
//! app's live feed and the cloud later). A broadcast channel: a slow
//! integration loses messages (and says so), it never slows the producer.

use candor_media::Time90k;
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq)]
pub struct EventChange {
    pub id: i64,
    pub camera: String,
    /// `motion`, `tamper`, `input`.
    pub kind: &'static str,
    pub source: &'static str,
    pub start: Time90k,
    /// `Some` when this change ends the event.
    pub end: Option<Time90k>,
    pub detail: Option<String>,
}

pub type EventBus = broadcast::Sender<EventChange>;

pub fn bus() -> EventBus {
    broadcast::channel(256).0
}
