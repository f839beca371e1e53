//! Webhooks: each change of an event that raises alarms is POSTed as
//! JSON, signed, with retries.
//!
//! Headers: `X-Candor-Timestamp` (Unix seconds) and `X-Candor-Signature:
//! v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. A receiver
//! recomputes the HMAC and rejects timestamps more than a few minutes old,
//! which stops replays. Deliveries retry with backoff (1 s doubling to 5 min,
//! for up to 24 h) from a bounded queue per endpoint; a full queue drops the
//! oldest delivery and says so. Nothing here can slow recording.

use crate::bus::{EventBus, EventChange};
use crate::config::WebhookConfig;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use sha2::Sha256;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const QUEUE: usize = 1000;
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
const TIMEOUT: Duration = Duration::from_secs(10);

/// `v1=` + hex HMAC-SHA256 over `timestamp.body`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn body(e: &EventChange) -> Vec<u8> {
    e.to_json().into_bytes()
}

struct Delivery {
    body: Vec<u8>,
    first_try: std::time::Instant,
    attempts: u32,
}

pub async fn run(
    cfg: WebhookConfig,
    bus: EventBus,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let url = cfg.url.0.clone();
    // Logged by its host only: a webhook URL is often a capability (the
    // token in its path or query), and logs reach diagnostics.
    let shown = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(|h| format!("{}://{h}/…", u.scheme())))
        .unwrap_or_else(|| "(webhook)".into());
    let connector = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
    {
        Ok(b) => b.https_or_http().enable_http1().build(),
        Err(e) => {
            tracing::error!("webhook {shown}: TLS set-up failed: {e}");
            return;
        }
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<bytes::Bytes>>(connector);
    let mut rx = bus.subscribe();
    let mut queue: VecDeque<Delivery> = VecDeque::new();
    let mut delay = Duration::ZERO;
    loop {
        // Take new events without waiting while deliveries are pending.
        let wait = if queue.is_empty() {
            Duration::from_secs(3600)
        } else {
            delay
        };
        tokio::select! {
            r = rx.recv() => match r {
                // Webhooks are for alarms: with object detection on, a
                // camera's motion events are not (the MQTT feed has all).
                Ok(e) if !e.alarm => continue,
                Ok(e) => {
                    if queue.len() >= QUEUE {
                        queue.pop_front();
                        tracing::warn!("webhook {shown}: queue full; dropped the oldest delivery");
                    }
                    queue.push_back(Delivery { body: body(&e), first_try: std::time::Instant::now(), attempts: 0 });
                    continue;
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("webhook {shown}: fell behind; {n} event change(s) not sent");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let Some(d) = queue.front_mut() else { continue };
        let ts = candor_media::time::unix_secs();
        let req = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", format!("Candor/{}", candor_wire::version()))
            .header("x-candor-timestamp", ts.to_string())
            .header("x-candor-signature", signature(&cfg.secret.0, ts, &d.body))
            .body(Full::new(bytes::Bytes::from(d.body.clone())));
        let ok = match req {
            Ok(req) => match tokio::time::timeout(TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let _ = resp.into_body().collect().await;
                    if status.is_success() {
                        true
                    } else {
                        tracing::warn!("webhook {shown}: HTTP {status}");
                        false
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!("webhook {shown}: {e}");
                    false
                }
                Err(_) => {
                    tracing::warn!("webhook {shown}: no answer within {TIMEOUT:?}");
                    false
                }
            },
            Err(e) => {
                tracing::error!("webhook {shown}: {e}");
                queue.pop_front();
                continue;
            }
        };
        if ok {
            queue.pop_front();
            delay = Duration::ZERO;
        } else {
            d.attempts += 1;
            if d.first_try.elapsed() > GIVE_UP_AFTER {
                tracing::error!(
                    "webhook {shown}: giving up on a delivery after {} attempts",
                    d.attempts
                );
                queue.pop_front();
                delay = Duration::ZERO;
            } else {
                delay = (Duration::from_secs(1) * 2u32.saturating_pow(d.attempts.min(9) - 1))
                    .min(Duration::from_secs(300));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Expected value from Python's hmac module:
    /// hmac.new(b"0123456789abcdef", b"1700000000.{}", hashlib.sha256).hexdigest()
    #[test]
    fn signature_matches_an_independent_hmac() {
        assert_eq!(
            super::signature("0123456789abcdef", 1_700_000_000, b"{}"),
            "v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }
}
