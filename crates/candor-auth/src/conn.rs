//! Connection limits for the HTTPS listeners of the recorder and the cloud.
//!
//! A connection costs a descriptor, and the recorder's descriptors are also
//! its segment files and camera sockets. So nobody may hold connections for
//! free:
//! - at most [`Limits::max_connections`] in all and
//!   [`Limits::max_per_address`] per client address; beyond that a new
//!   connection is closed at once, before TLS;
//! - the TLS handshake must finish within [`Limits::handshake`];
//! - a connection on which no byte moves either way for [`Limits::idle`]
//!   is closed ([`Activity`], [`idle_watchdog`]): an idle keep-alive, a
//!   client that completed TLS and then said nothing;
//! - request headers must arrive within [`Limits::header_read`] (hyper's
//!   timer) and request bodies within [`Limits::body_read`] (the servers'
//!   body middleware), which ends slowloris clients that trickle bytes.
//!
//! Long streams that the server writes to (live video, the event feed,
//! exports) move bytes, so they are never idle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub handshake: Duration,
    pub header_read: Duration,
    pub body_read: Duration,
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_per_address: 64,
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// Counts open connections, in all and per address.
pub struct ConnGate {
    pub limits: Limits,
    total: AtomicUsize,
    per: Mutex<HashMap<IpAddr, usize>>,
    /// Connections closed at accept because a cap was reached.
    pub refused: AtomicU64,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    gate: Arc<ConnGate>,
    ip: IpAddr,
}

impl ConnGate {
    pub fn new(limits: Limits) -> Arc<ConnGate> {
        Arc::new(ConnGate {
            limits,
            total: AtomicUsize::new(0),
            per: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// A place for a connection from `ip`, or `None`: close it now. IPv6
    /// clients count by their /64 (one host usually holds a whole one).
    pub fn admit(self: &Arc<ConnGate>, ip: IpAddr) -> Option<Admitted> {
        let ip = match ip.to_canonical() {
            IpAddr::V6(v) => {
                let s = v.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
            v4 => v4,
        };
        let mut per = self.per.lock().unwrap_or_else(|e| e.into_inner());
        let n = per.get(&ip).copied().unwrap_or(0);
        if n >= self.limits.max_per_address
            || self.total.load(Ordering::SeqCst) >= self.limits.max_connections
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        per.insert(ip, n + 1);
        self.total.fetch_add(1, Ordering::SeqCst);
        Some(Admitted {
            gate: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per = self.gate.per.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
        self.gate.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// When a connection last moved a byte.
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Completes once no byte has moved for `idle`: select it against the
/// connection, so that an idle one is dropped (and closed).
pub async fn idle_watchdog(act: Arc<Activity>, idle: Duration) {
    loop {
        let quiet = act.idle_for();
        if quiet >= idle {
            return;
        }
        tokio::time::sleep(idle - quiet).await;
    }
}

/// A stream that records its activity and holds its connection's place
/// (the place is freed when the stream is dropped, which for an upgraded
/// WebSocket is when the socket closes, not when the HTTP exchange ends).
pub struct Tracked<S> {
    inner: S,
    act: Arc<Activity>,
    _place: Admitted,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, act: Arc<Activity>, place: Admitted) -> Tracked<S> {
        act.touch();
        Tracked {
            inner,
            act,
            _place: place,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.act.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves HTTP/1.1 and HTTP/2 (with upgrades, for WebSockets) on `io`
/// within `limits`: header timeout, at most 8 concurrent HTTP/2 streams
/// (each may buffer a request body) and 64 KiB of headers, and the
/// connection is dropped once nothing has moved for `limits.idle`. The
/// connection's place is held by `io` ([`Tracked`]) until it closes.
pub async fn serve_http<I, S, B>(io: Tracked<I>, service: S, limits: Limits) -> Result<(), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let act = io.act.clone();
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(8)
        .max_header_list_size(64 * 1024);
    let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
    tokio::select! {
        r = conn => r.map_err(|e| e.to_string()),
        _ = idle_watchdog(act, limits.idle) => Err("idle connection closed".into()),
    }
}

/// Why a request body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than allowed (413).
    TooLarge,
    /// Did not arrive in time (408), or the client broke off.
    Slow,
}

/// Reads a whole request body of at most `max` bytes within `within`:
/// what both servers do before any handler sees a body, so that a client
/// trickling one byte at a time cannot hold a connection for long.
pub async fn read_body<B>(body: B, max: usize, within: Duration) -> Result<bytes::Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match tokio::time::timeout(within, http_body_util::Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::Slow),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Slow),
    }
}

/// Whether `ip` is a public internet address: not loopback, private,
/// link-local, carrier-grade NAT, multicast, documentation, benchmarking,
/// unspecified or otherwise reserved. For connections a remote party asks
/// the server to make (Web Push endpoints), so it cannot be aimed inside.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(IpAddr::V6(v), IpAddr::V4),
        v => v,
    };
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24, IETF
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64: may map to anything
                || s[0] == 0x2002 // 6to4: embeds a v4 address
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard-only
                || s[..6] == [0; 6]) // IPv4-compatible ::a.b.c.d
        }
    }
}

/// Raises the soft limit on open descriptors to the hard limit, so that
/// connections can never take the descriptors recording needs: the common
/// soft default is 1,024. Returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum
        && l.current.is_some_and(|c| c < max)
    {
        l.current = Some(max);
        setrlimit(Resource::Nofile, l)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_all_and_places_come_back() {
        let g = ConnGate::new(Limits {
            max_connections: 5,
            max_per_address: 3,
            ..Limits::default()
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let held: Vec<_> = (0..10).filter_map(|_| g.admit(a)).collect();
        assert_eq!(held.len(), 3);
        let more: Vec<_> = (0..10).filter_map(|_| g.admit(b)).collect();
        assert_eq!(more.len(), 2, "the global cap");
        drop(held);
        assert_eq!(g.open(), 2);
        assert!(g.admit(a).is_some());
        assert_eq!(g.refused.load(Ordering::Relaxed), 15);
    }

    #[test]
    fn only_public_addresses_are_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_fires_only_after_quiet() {
        let act = Activity::new();
        act.touch();
        let w = tokio::spawn(idle_watchdog(act.clone(), Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_secs(30)).await;
        act.touch();
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!w.is_finished(), "touched 50 s ago");
        tokio::time::sleep(Duration::from_secs(11)).await;
        tokio::task::yield_now().await;
        assert!(w.is_finished(), "quiet for 61 s");
    }
}
