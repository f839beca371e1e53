//! MQTT: event states and messages for home automation, with Home Assistant
//! discovery. Topic layout (prefix `candor` by default):
//!
//! - `candor/available`: `online` / `offline` (retained; `offline` is the
//!   last will, so it also shows when the recorder dies).
//! - `candor/<camera>/<kind>`: `ON` / `OFF` (retained), kind = motion,
//!   tamper or input.
//! - `candor/<camera>/snapshot`: the latest event snapshot, JPEG bytes
//!   (retained).
//! - `candor/events`: JSON `{"type": "new"|"update"|"end", "event": {...}}`.
//! - `homeassistant/binary_sensor/candor_<camera>_<kind>/config` and
//!   `homeassistant/image/candor_<camera>_snapshot/config`: discovery.

use crate::bus::{EventBus, Phase};
use crate::config::MqttConfig;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const KINDS: [(&str, Option<&str>); 3] = [
    ("motion", Some("motion")),
    ("tamper", Some("tamper")),
    ("input", None),
];

fn device(prefix: &str, camera: &str) -> serde_json::Value {
    serde_json::json!({ "identifiers": [format!("{prefix}_{camera}")], "name": camera, "manufacturer": "Candor", "model": "camera" })
}

/// Home Assistant's MQTT image entity: shows the latest event snapshot.
fn image_discovery(prefix: &str, camera: &str) -> (String, String) {
    let id = format!("{prefix}_{camera}_snapshot");
    let v = serde_json::json!({
        "name": "last event",
        "unique_id": id,
        "image_topic": format!("{prefix}/{camera}/snapshot"),
        "content_type": "image/jpeg",
        "availability_topic": format!("{prefix}/available"),
        "device": device(prefix, camera),
    });
    (format!("homeassistant/image/{id}/config"), v.to_string())
}

/// Home Assistant's MQTT sensor for how many objects of `label` the
/// camera sees now (Frigate's `<camera>/<label>` count topic).
fn count_discovery(prefix: &str, camera: &str, label: &str) -> (String, String) {
    let id = format!("{prefix}_{camera}_{label}_count");
    let v = serde_json::json!({
        "name": format!("{label} count"),
        "unique_id": id,
        "state_topic": format!("{prefix}/{camera}/{label}"),
        "state_class": "measurement",
        "availability_topic": format!("{prefix}/available"),
        "device": device(prefix, camera),
    });
    (format!("homeassistant/sensor/{id}/config"), v.to_string())
}

fn discovery(prefix: &str, camera: &str, kind: &str, class: Option<&str>) -> (String, String) {
    let id = format!("{prefix}_{camera}_{kind}");
    let mut v = serde_json::json!({
        "name": kind.to_string(),
        "unique_id": id,
        "state_topic": format!("{prefix}/{camera}/{kind}"),
        "payload_on": "ON", "payload_off": "OFF",
        "availability_topic": format!("{prefix}/available"),
        "device": device(prefix, camera),
    });
    if let Some(c) = class {
        v["device_class"] = c.into();
    }
    (
        format!("homeassistant/binary_sensor/{id}/config"),
        v.to_string(),
    )
}

/// Publishes until the bus closes. Connection problems are logged and
/// retried; they never touch recording.
pub async fn run(
    cfg: MqttConfig,
    mut cameras: tokio::sync::watch::Receiver<Vec<String>>,
    bus: EventBus,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let prefix = cfg.topic_prefix.trim_end_matches('/').to_owned();
    let mut opts = MqttOptions::new(
        format!("candor-{:08x}", rand::random::<u32>()),
        cfg.url.host.clone(),
        cfg.url.port,
    );
    opts.set_keep_alive(Duration::from_secs(15));
    // Snapshots are JPEGs of tens of kB; the default limit is 10 kB.
    opts.set_max_packet_size(64 * 1024, 4 * 1024 * 1024);
    opts.set_last_will(LastWill::new(
        format!("{prefix}/available"),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    if cfg.url.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        match tls {
            Ok(c) => opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(c)),
            )),
            Err(e) => {
                tracing::error!("MQTT TLS set-up failed: {e}; MQTT is off");
                return;
            }
        };
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let mut watching = true;
    let mut rx = bus.subscribe();
    let host = format!("{}:{}", cfg.url.host, cfg.url.port);
    let announce = |client: AsyncClient, prefix: String, cameras: Vec<String>| async move {
        let _ = client
            .publish(
                format!("{prefix}/available"),
                QoS::AtLeastOnce,
                true,
                "online",
            )
            .await;
        for cam in &cameras {
            for (kind, class) in KINDS {
                let (t, p) = discovery(&prefix, cam, kind, class);
                let _ = client.publish(t, QoS::AtLeastOnce, true, p).await;
            }
            let (t, p) = image_discovery(&prefix, cam);
            let _ = client.publish(t, QoS::AtLeastOnce, true, p).await;
            for label in candor_detect::Label::ALL {
                let (t, p) = count_discovery(&prefix, cam, label.name());
                let _ = client.publish(t, QoS::AtLeastOnce, true, p).await;
            }
        }
    };
    type InView = std::collections::HashMap<(String, &'static str), std::collections::HashSet<i64>>;
    // The object counts as this task knows them (0 where none is open),
    // published from this loop, so no older figure overtakes a newer one:
    // a retained count left by a previous run, or missed while the broker
    // was away, is put right.
    let publish_counts =
        |client: &AsyncClient, prefix: &str, cameras: &[String], in_view: &InView| {
            for cam in cameras {
                for label in candor_detect::Label::ALL {
                    let n = in_view
                        .get(&(cam.clone(), label.name()))
                        .map_or(0, |ids| ids.len());
                    let _ = client.try_publish(
                        format!("{prefix}/{cam}/{}", label.name()),
                        QoS::AtLeastOnce,
                        true,
                        n.to_string(),
                    );
                }
            }
        };
    // Objects in view per camera and label: the event ids of open object
    // events. A count is published whenever it changes (retained).
    let mut in_view: InView = Default::default();
    // The event loop (network I/O) runs in its own task and is never
    // cancelled mid-packet; this task only queues messages.
    let (connected_tx, mut connected) = tokio::sync::mpsc::channel::<()>(4);
    let mut poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("MQTT connected to {host}");
                    let _ = connected_tx.try_send(());
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("MQTT {host}: {e}; retrying in 2 s");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    loop {
        tokio::select! {
            Some(()) = connected.recv() => {
                tokio::spawn(announce(client.clone(), prefix.clone(), cameras.borrow().clone()));
                publish_counts(&client, &prefix, &cameras.borrow(), &in_view);
            }
            // A camera added at run time gets its discovery messages too.
            r = cameras.changed(), if watching => {
                if r.is_ok() {
                    tokio::spawn(announce(client.clone(), prefix.clone(), cameras.borrow_and_update().clone()));
                    publish_counts(&client, &prefix, &cameras.borrow(), &in_view);
                } else {
                    watching = false;
                }
            }
            r = rx.recv() => match r {
                Ok(e) => {
                    if let Some(o) = &e.object {
                        let ids = in_view.entry((e.camera.clone(), o.label)).or_default();
                        let changed = if e.phase == Phase::End { ids.remove(&e.id) } else { ids.insert(e.id) };
                        if changed {
                            let n = ids.len().to_string();
                            if ids.is_empty() {
                                in_view.remove(&(e.camera.clone(), o.label));
                            }
                            let _ = client.try_publish(format!("{prefix}/{}/{}", e.camera, o.label), QoS::AtLeastOnce, true, n);
                        }
                    } else if e.phase != Phase::Update {
                        let on = e.phase == Phase::Start;
                        let _ = client.try_publish(format!("{prefix}/{}/{}", e.camera, e.kind), QoS::AtLeastOnce, true, if on { "ON" } else { "OFF" });
                    }
                    let _ = client.try_publish(format!("{prefix}/events"), QoS::AtLeastOnce, false, e.to_json());
                    // The picture after the message: an alarm must not queue
                    // behind tens of kilobytes of JPEG.
                    if let Some(jpeg) = &e.snapshot {
                        let _ = client.try_publish(format!("{prefix}/{}/snapshot", e.camera), QoS::AtLeastOnce, true, jpeg.to_vec());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("MQTT fell behind; {n} event message(s) not published");
                    // Ends may be among them: forget what is in view (an
                    // object still there counts again at its next update)
                    // rather than count it for ever.
                    for (cam, label) in in_view.keys() {
                        let _ = client.try_publish(format!("{prefix}/{cam}/{label}"), QoS::AtLeastOnce, true, "0");
                    }
                    in_view.clear();
                }
                Err(RecvError::Closed) => break,
            },
            _ = shutdown.changed() => {
                // Nothing is in view of a recorder that stops.
                for (cam, label) in in_view.keys() {
                    let _ = client.try_publish(format!("{prefix}/{cam}/{label}"), QoS::AtLeastOnce, true, "0");
                }
                let _ = client.try_publish(format!("{prefix}/available"), QoS::AtLeastOnce, true, "offline");
                // Give the event loop a moment to send it, then go.
                tokio::time::sleep(Duration::from_millis(300)).await;
                break;
            }
        }
    }
    let _ = client.try_disconnect();
    if tokio::time::timeout(Duration::from_secs(1), &mut poller)
        .await
        .is_err()
    {
        poller.abort(); // the broker is unreachable: stop retrying
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn discovery_payload_names_the_state_and_availability_topics() {
        let (t, p) = super::discovery("candor", "gate", "motion", Some("motion"));
        assert_eq!(t, "homeassistant/binary_sensor/candor_gate_motion/config");
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["state_topic"], "candor/gate/motion");
        assert_eq!(v["availability_topic"], "candor/available");
        assert_eq!(v["device_class"], "motion");
        let (t, p) = super::count_discovery("candor", "gate", "person");
        assert_eq!(t, "homeassistant/sensor/candor_gate_person_count/config");
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["state_topic"], "candor/gate/person");
        let (t, p) = super::image_discovery("candor", "gate");
        assert_eq!(t, "homeassistant/image/candor_gate_snapshot/config");
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["image_topic"], "candor/gate/snapshot");
        assert_eq!(v["content_type"], "image/jpeg");
    }
}
