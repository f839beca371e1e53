//! Web Push to the owners' devices: RFC 8030 delivery, RFC 8291 payload
//! encryption (web-push-native, RustCrypto) and RFC 8292 VAPID.
//!
//! The VAPID JWT (ES256) is signed here with p256 rather than through
//! web-push-native's `vapid` feature, which would bring jwt-simple and a
//! second set of curve implementations for one signature.

use crate::db::{Db, Val};
use crate::{CloudError, Config};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use p256::ecdsa::signature::Signer;
use std::sync::Arc;

type Https = hyper_rustls::HttpsConnector<HttpConnector<PublicOnly>>;

#[derive(Clone)]
pub struct Push(Arc<Inner>);

struct Inner {
    key: p256::ecdsa::SigningKey,
    public: String,
    subject: String,
    client: Client<Https, Full<Bytes>>,
    db: Db,
    /// Per site: the minute's start and the alarms pushed in it.
    rate: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    /// Browsers send it; unused.
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

impl Subscription {
    /// Checks what a browser sent before it is stored: an https endpoint,
    /// a P-256 public key, a 16-byte secret.
    pub fn validate(&self) -> Result<(), String> {
        let uri: http::Uri = self
            .endpoint
            .parse()
            .map_err(|_| "endpoint is not a URL".to_string())?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() || self.endpoint.len() > 2048 {
            return Err("endpoint must be an https URL".into());
        }
        let key = B64
            .decode(self.keys.p256dh.trim_end_matches('='))
            .map_err(|_| "keys.p256dh is not base64url")?;
        p256::PublicKey::from_sec1_bytes(&key).map_err(|_| "keys.p256dh is not a P-256 key")?;
        let auth = B64
            .decode(self.keys.auth.trim_end_matches('='))
            .map_err(|_| "keys.auth is not base64url")?;
        if auth.len() != 16 {
            return Err("keys.auth must be 16 bytes".into());
        }
        Ok(())
    }
}

/// Resolves push service hosts, keeping only public addresses (see
/// [`candor_auth::conn::is_public`]) unless the host is in `push_allow_hosts`.
/// The check happens at connect time, on the addresses actually dialled, so
/// a DNS answer that changes after the subscription was checked (rebinding)
/// cannot aim a push inside the operator's network.
#[derive(Clone)]
pub struct PublicOnly(pub Arc<Vec<String>>);

impl PublicOnly {
    pub async fn resolve(
        allow: &[String],
        host: &str,
        port: u16,
    ) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let listed = allow.iter().any(|a| a.eq_ignore_ascii_case(host));
        let addrs: Vec<_> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| std::io::Error::other("resolving the push service timed out"))??
        .filter(|a| listed || candor_auth::conn::is_public(a.ip()))
        .collect();
        if addrs.is_empty() {
            return Err(std::io::Error::other(format!(
                "{host} has no public address (list it in push_allow_hosts to allow it)"
            )));
        }
        Ok(addrs)
    }
}

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for PublicOnly {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow = self.0.clone();
        Box::pin(async move {
            // The connector sets the port afterwards.
            PublicOnly::resolve(&allow, name.as_str(), 0)
                .await
                .map(Vec::into_iter)
        })
    }
}

/// Push subscriptions one account may hold (phones and browsers).
pub const MAX_SUBSCRIPTIONS: i64 = 10;
/// Alarms of one site that are pushed per minute; more are stored and
/// shown in the app, but not pushed (a recorder, even a fake one, cannot
/// make the cloud flood its owner's devices or the push services).
pub const MAX_PUSHES_PER_SITE_MINUTE: u32 = 20;

impl Push {
    pub async fn open(db: &Db, config: &Config) -> Result<Push, CloudError> {
        let stored = db
            .query_one("SELECT value FROM meta WHERE key = 'vapid_key'", vec![])
            .await?
            .and_then(|r| r.text(0).ok())
            .and_then(|s| B64.decode(s).ok())
            .and_then(|b| p256::ecdsa::SigningKey::from_slice(&b).ok());
        let key = match stored {
            Some(k) => k,
            None => {
                let k = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
                db.exec(
                    "INSERT INTO meta (key, value) VALUES ('vapid_key', $1)",
                    vec![B64.encode(k.to_bytes()).into()],
                )
                .await?;
                k
            }
        };
        let public = B64.encode(key.verifying_key().to_encoded_point(false).as_bytes());
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(p) = &config.push_ca {
            let f = std::fs::File::open(p).map_err(|source| CloudError::Read {
                path: p.clone(),
                source,
            })?;
            for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
                let c = c.map_err(|source| CloudError::Read {
                    path: p.clone(),
                    source,
                })?;
                roots
                    .add(c)
                    .map_err(|e| CloudError::Tls(format!("push_ca: {e}")))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| CloudError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Endpoints come from browsers (and so from anyone with an
        // account): the connector resolves through a filter that lets only
        // public addresses through, or hosts the operator listed.
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
            PublicOnly(Arc::new(config.push_allow_hosts.clone())),
        );
        http.enforce_http(false);
        http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Push(Arc::new(Inner {
            key,
            public,
            subject: config.vapid_subject.clone(),
            client,
            db: db.clone(),
            rate: Default::default(),
        })))
    }

    /// The application server key browsers subscribe with.
    pub fn public_key(&self) -> &str {
        &self.0.public
    }

    /// Whether another alarm of `site` may be pushed this minute.
    pub fn may_push(&self, site: &str) -> bool {
        let mut m = self.0.rate.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, (t, _)| now.duration_since(*t).as_secs() < 60);
        }
        let e = m.entry(site.to_owned()).or_insert((now, 0));
        if now.duration_since(e.0).as_secs() >= 60 {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= MAX_PUSHES_PER_SITE_MINUTE
    }

    /// Sends an alarm to every device the account subscribed, in the
    /// background. Only what the recorder shared is in `alarm`; with
    /// private alarms that is the site and the time.
    pub fn alarm(&self, account: &str, alarm: candor_wire::cloud::Alarm, open: Option<String>) {
        let mut payload = candor_wire::cloud::PushPayload::of(&alarm);
        payload.url = open;
        self.notice(account, payload);
    }

    /// Sends a notification to every device the account subscribed, in
    /// the background.
    pub fn notice(&self, account: &str, payload: candor_wire::cloud::PushPayload) {
        let this = self.clone();
        let account = account.to_owned();
        tokio::spawn(async move {
            let payload = serde_json::to_string(&payload).unwrap_or_default();
            let subs = match this
                .0
                .db
                .query(
                    "SELECT endpoint, p256dh, auth FROM push_sub WHERE account = $1",
                    vec![Val::from(account.as_str())],
                )
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("reading push subscriptions: {e}");
                    return;
                }
            };
            for s in subs {
                let (Ok(endpoint), Ok(p256dh), Ok(auth)) = (s.text(0), s.text(1), s.text(2)) else {
                    continue;
                };
                match this
                    .send(&endpoint, &p256dh, &auth, payload.as_bytes())
                    .await
                {
                    Ok(status) if status == 404 || status == 410 => {
                        // The browser dropped the subscription.
                        let _ = this
                            .0
                            .db
                            .exec(
                                "DELETE FROM push_sub WHERE endpoint = $1 AND account = $2",
                                vec![endpoint.into(), Val::from(account.as_str())],
                            )
                            .await;
                    }
                    Ok(status) if !(200..300).contains(&status) => {
                        tracing::warn!(status, "push service refused a message");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("push: {e}"),
                }
            }
        });
    }

    async fn send(
        &self,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        body: &[u8],
    ) -> Result<u16, String> {
        let uri: http::Uri = endpoint.parse().map_err(|_| "bad endpoint")?;
        let ua_public = B64
            .decode(p256dh.trim_end_matches('='))
            .ok()
            .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok())
            .ok_or("bad p256dh")?;
        let ua_auth = B64
            .decode(auth.trim_end_matches('='))
            .ok()
            .filter(|a| a.len() == 16)
            .ok_or("bad auth")?;
        let req = web_push_native::WebPushBuilder::new(
            uri.clone(),
            ua_public,
            *web_push_native::Auth::from_slice(&ua_auth),
        )
        .with_valid_duration(std::time::Duration::from_secs(3600))
        .build(body.to_vec())
        .map_err(|e| e.to_string())?;
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(
            http::header::AUTHORIZATION,
            self.vapid(&uri)?.parse().map_err(|_| "header")?,
        );
        parts
            .headers
            .insert("urgency", http::HeaderValue::from_static("high"));
        let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.0.client.request(req),
        )
        .await
        .map_err(|_| "push service timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` (RFC 8292).
    fn vapid(&self, endpoint: &http::Uri) -> Result<String, String> {
        let aud = format!(
            "{}://{}",
            endpoint.scheme_str().unwrap_or("https"),
            endpoint.authority().map(|a| a.as_str()).unwrap_or("")
        );
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = B64.encode(
            serde_json::json!({
                "aud": aud,
                "exp": crate::now() + 12 * 3600,
                "sub": self.0.subject,
            })
            .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let sig: p256::ecdsa::Signature = self.0.key.sign(signing_input.as_bytes());
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.to_bytes()),
            self.0.public
        ))
    }
}
