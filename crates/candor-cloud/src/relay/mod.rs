//! Remote access (docs/design/remote.md), the cloud's side: browsers reach
//! `https://<site label>.<remote zone>` on the cloud's port, and the cloud
//! passes their TLS bytes, unopened, to that site's recorder over its link.
//!
//! - [`route`] reads the ClientHello's server name without terminating TLS
//!   ([`sni`]); a name outside the remote zone goes to the cloud's own TLS,
//!   with the bytes read replayed ([`Rewind`]).
//! - [`open`] passes a connection for `<label>.<zone>` to that site's
//!   recorder, if the site is online and its recorder allows remote access.
//!   Otherwise the connection is closed: an unknown label and a site with
//!   remote access off look the same. A recorder that takes data
//!   connections is sent a `dial` and the browser waits for it ([`join`]
//!   pairs the two and copies bytes between them, unread); an older one
//!   gets a stream over its link ([`candor_link::tunnel`]).

pub mod sni;

use crate::Cloud;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Stream opens per site per minute, and per client address.
pub const OPENS_PER_MINUTE: usize = 120;
pub const OPENS_PER_MINUTE_PER_CLIENT: usize = 30;
/// Streams one client address may hold open to one site (of its 32).
pub const STREAMS_PER_CLIENT: usize = 8;
/// A stream on which nothing moved for this long is closed.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);
/// How long a browser waits for its recorder's data connection.
pub const DIAL_WAIT: Duration = Duration::from_secs(10);
/// Each direction's copy buffer between a browser and a data connection
/// (allocated when the two are joined).
const COPY_BUF: usize = 32 * 1024;
/// Characters of a site's label: base32's lowercase alphabet.
pub const LABEL_LEN: usize = 8;

/// A new site label: 8 random base32 characters (40 bits), at least one of
/// them a digit (so no label is a word a LAN host could be called), which
/// name neither the owner nor the site.
pub fn new_label() -> String {
    use rand::Rng;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut r = rand::rngs::OsRng;
    loop {
        let l: String = (0..LABEL_LEN)
            .map(|_| A[r.gen_range(0..A.len())] as char)
            .collect();
        if l.bytes().any(|b| b.is_ascii_digit()) {
            return l;
        }
    }
}

/// The label of `name` if it is `<label>.<zone>` with a well-formed label.
pub fn label_of(name: &str, zone: &str) -> Option<String> {
    let label = name.strip_suffix(zone)?.strip_suffix('.')?;
    (label.len() == LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    .then(|| label.to_owned())
}

/// Whether `buf` is TLS records end to end (or clearly not TLS, which the
/// parser then says).
fn whole_records(buf: &[u8]) -> bool {
    if buf.first().is_some_and(|&b| b != 0x16) {
        return true;
    }
    let mut at = 0;
    while at + 5 <= buf.len() {
        at += 5 + usize::from(u16::from_be_bytes([buf[at + 3], buf[at + 4]]));
    }
    !buf.is_empty() && at == buf.len()
}

pub enum Routed {
    /// For the cloud itself: its TLS reads the hello again.
    Cloud(Rewind<TcpStream>),
    /// A recorder's data connection, with its token.
    Dial { token: String, tcp: TcpStream },
    /// For a site, with the bytes read so far.
    Remote {
        label: String,
        hello: Vec<u8>,
        tcp: TcpStream,
    },
    /// Not TLS, too slow, or gone.
    Closed,
}

/// Reads the ClientHello (until `deadline`, at most [`sni::MAX_HELLO`]
/// bytes) and decides where the connection goes.
pub async fn route(zone: &str, mut tcp: TcpStream, deadline: tokio::time::Instant) -> Routed {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let sni = loop {
        // A recorder's data connection: its preamble, then nothing until
        // the browser's hello is passed to it, so any more is refused.
        if buf.first() == Some(&candor_link::dial::MAGIC[0]) {
            match candor_link::dial::peek(&buf) {
                candor_link::dial::Peek::Dial(token)
                    if buf.len() == candor_link::dial::PREAMBLE_LEN =>
                {
                    return Routed::Dial { token, tcp };
                }
                candor_link::dial::Peek::NeedMore => {}
                _ => return Routed::Closed,
            }
        // Parsed only once the bytes end on a whole TLS record: a hello sent
        // a byte at a time costs one parse, not one per byte.
        } else if whole_records(&buf) {
            match sni::peek(&buf) {
                sni::Peek::NeedMore => {}
                sni::Peek::NotTls => return Routed::Closed,
                sni::Peek::Hello { sni } => break sni,
            }
        } else if buf.len() > sni::MAX_HELLO {
            return Routed::Closed;
        }
        let want = (sni::MAX_HELLO + 1 - buf.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk[..want])).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Routed::Closed,
        }
    };
    match sni.as_deref().and_then(|n| label_of(n, zone)) {
        Some(label) => Routed::Remote {
            label,
            hello: buf,
            tcp,
        },
        None => Routed::Cloud(Rewind::new(buf, tcp)),
    }
}

/// Passes a browser's connection to the site named by `label`, or drops it.
pub fn open<S>(cloud: &Cloud, label: &str, peer: SocketAddr, hello: &[u8], io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Whether access is on, and the count of cuts it is on under, read
    // under the lock cuts are made under: a data connection is joined only
    // if no cut came between (`join`).
    let found = cloud
        .remote
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(label)
        .filter(|e| e.allowed.load(Ordering::Relaxed))
        .map(|e| (e.clone(), *e.cuts.borrow()));
    let Some((end, parked)) = found else {
        tracing::debug!(%peer, "remote connection for an unknown or closed site");
        return;
    };
    {
        let mut opens = end.opens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while opens
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            opens.pop_front();
        }
        let mine = opens.iter().filter(|(_, ip)| *ip == peer.ip()).count();
        if opens.len() >= OPENS_PER_MINUTE || mine >= OPENS_PER_MINUTE_PER_CLIENT {
            tracing::info!(site = end.site, %peer, "remote connection refused: too many opens this minute");
            return;
        }
        opens.push_back((now, peer.ip()));
    }
    // One client holds at most a share of the site's streams, so one
    // address that knows the name cannot lock the owner out.
    let Some(place) = end.streams.admit(peer.ip()) else {
        tracing::info!(site = end.site, %peer, "remote connection refused: too many streams open");
        return;
    };
    let act = candor_auth::conn::Activity::new();
    let io = candor_auth::conn::Tracked::new(io, act.clone(), place);
    if end.dial.load(Ordering::Relaxed) {
        dial(cloud, label, &end, parked, peer, hello, Box::new(io), act);
        return;
    }
    let id = end.next_stream.fetch_add(2, Ordering::Relaxed);
    if let Err(e) = end.tunnel.open(id, &peer.to_string(), hello, io) {
        tracing::info!(site = end.site, "remote connection refused: {e}");
    }
}

/// A browser waiting for its recorder's data connection.
pub struct Waiting {
    io: Box<dyn candor_link::tunnel::Io>,
    /// What the router read of it (the ClientHello), for the recorder.
    hello: Vec<u8>,
    /// Shared by both sockets, for the idle time.
    act: std::sync::Arc<candor_auth::conn::Activity>,
    site: String,
    /// The site's label and link connection when it was parked: its data
    /// connection is joined only while that link is still the site's and
    /// still allows remote access.
    label: String,
    conn: u64,
    /// The site's count of cuts when it was parked.
    parked: u64,
}

/// Asks the site's recorder for a data connection for this browser, which
/// waits [`DIAL_WAIT`] for it in `cloud.dials` (holding its places: the
/// site's stream limits bound how many wait).
#[allow(clippy::too_many_arguments)] // one caller, each a different thing
fn dial(
    cloud: &Cloud,
    label: &str,
    end: &crate::RemoteEnd,
    parked: u64,
    peer: SocketAddr,
    hello: &[u8],
    io: Box<dyn candor_link::tunnel::Io>,
    act: std::sync::Arc<candor_auth::conn::Activity>,
) {
    use rand::RngCore;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let waiting = Waiting {
        io,
        hello: hello.to_vec(),
        act,
        site: end.site.clone(),
        label: label.to_owned(),
        conn: end.conn,
        parked,
    };
    cloud
        .dials
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), waiting);
    let m = candor_link::Message::Dial {
        token: token.clone(),
        client: peer.to_string(),
    };
    if let Err(e) = end.tunnel.control(m) {
        tracing::info!(site = end.site, "remote connection refused: {e}");
        cloud
            .dials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
        return;
    }
    // Not answered in time: the browser's connection closes.
    let dials = cloud.dials.clone();
    tokio::spawn(async move {
        tokio::time::sleep(DIAL_WAIT).await;
        let gone = dials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
        if let Some(w) = gone {
            tracing::info!(site = w.site, "a browser's data connection never came");
        }
    });
}

/// A recorder's data connection: paired with the browser its token names,
/// which gets the recorder's bytes and gives its own, unread, until either
/// closes or nothing moved for [`STREAM_IDLE`]. An unknown (or used, or
/// expired) token closes the connection.
pub async fn join(
    cloud: &Cloud,
    token: &str,
    peer: SocketAddr,
    tcp: TcpStream,
    place: candor_auth::conn::Admitted,
) {
    use tokio::io::AsyncWriteExt;
    let Some(w) = cloud
        .dials
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(token)
    else {
        tracing::debug!(%peer, "a data connection with an unknown token");
        return;
    };
    let Waiting {
        io: mut browser,
        hello,
        act,
        site,
        label,
        conn,
        parked,
    } = w;
    // Remote access switched off (even if on again), or the link lost,
    // since the browser was parked: nothing is joined. Once joined, the
    // same ends cut the pair.
    let cuts = cloud
        .remote
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&label)
        .filter(|e| e.conn == conn && e.allowed.load(Ordering::Relaxed))
        // Read under the lock that cuts are made under: any later cut
        // ends this pair.
        .map(|e| {
            let rx = e.cuts.subscribe();
            let joined = *rx.borrow();
            (rx, joined)
        })
        .filter(|&(_, joined)| joined == parked);
    let Some((mut cuts, joined)) = cuts else {
        tracing::info!(site, "a data connection after its link ended; closed");
        return;
    };
    let cut = async move {
        // Err: the entry was dropped (replaced by a newer link, which cuts
        // it too, or removed): closing is right either way.
        let _ = cuts.wait_for(|&n| n != joined).await;
    };
    let mut data = candor_auth::conn::Tracked::new(tcp, act.clone(), place);
    let pair = async {
        data.write_all(&hello).await?;
        tokio::io::copy_bidirectional_with_sizes(&mut browser, &mut data, COPY_BUF, COPY_BUF).await
    };
    tokio::select! {
        r = pair => if let Err(e) = r {
            tracing::debug!(site, "remote connection ended: {e}");
        },
        _ = candor_auth::conn::idle_watchdog(act, STREAM_IDLE) => {
            tracing::debug!(site, "remote connection idle");
        }
        () = cut => {
            tracing::info!(site, "remote connection cut: the site's link ended or remote access went off");
        }
    }
}

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream that first yields bytes already read from it (the ClientHello
/// the router looked at), then the rest. Writes go straight through.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn records_are_whole_only_at_their_ends() {
        let rec = |n: usize| {
            let mut r = vec![0x16, 3, 1];
            r.extend_from_slice(&(n as u16).to_be_bytes());
            r.extend(std::iter::repeat_n(0, n));
            r
        };
        let one = rec(300);
        assert!(whole_records(&one));
        assert!(!whole_records(&one[..200]));
        assert!(!whole_records(&one[..3]));
        assert!(!whole_records(&[]));
        let two = [rec(10), rec(20)].concat();
        assert!(whole_records(&two));
        assert!(!whole_records(&two[..20]));
        assert!(
            whole_records(b"GET / HTTP/1.1"),
            "not TLS: the parser says so"
        );
    }

    #[test]
    fn only_well_formed_labels_under_the_zone_are_sites() {
        let z = "remote.example.com";
        assert_eq!(
            label_of("abcd2345.remote.example.com", z),
            Some("abcd2345".into())
        );
        for other in [
            "remote.example.com",
            "abcd2345.remote.example.com.evil",
            "x.abcd2345.remote.example.com",
            "abcd2345xremote.example.com",
            "abcd2341.remote.example.com",
            "abc.remote.example.com",
            "cloud.example.com",
        ] {
            assert_eq!(label_of(other, z), None, "{other}");
        }
        let l = new_label();
        assert_eq!(label_of(&format!("{l}.{z}"), z), Some(l));
    }

    #[tokio::test]
    async fn a_rewound_stream_gives_the_prefix_then_the_rest_and_writes_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(b"hello ".to_vec(), a);
        b.write_all(b"world").await.unwrap();
        drop(b.shutdown().await);
        let mut got = [0u8; 4];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hell");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"o world");
    }
}
