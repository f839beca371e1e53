//! Remote access by data connection (`candor_link::dial`,
//! docs/design/remote.md "Data connections"): for each browser the cloud
//! names in a `dial`, a TCP connection of its own from this recorder to the
//! cloud's address (the one in the config, through the configured proxy;
//! never an address the cloud gives), which the web server then serves as
//! it serves a LAN connection, TLS and all. The cloud copies the bytes
//! between it and the browser without reading them.
//!
//! Each data connection is counted ([`DataConn`]): its ledger row, with the
//! bytes each way, is written when the web server lets go of it. When the
//! link ends (remote access switched off, unpaired, the cloud lost) every
//! data connection is shut down at once ([`DataConns::end_all`]), as the
//! streams over the link are.

use super::LinkState;
use candor_media::Time90k;
use candor_storage::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Data connections a site's recorder holds at once (connecting or open),
/// as many as the cloud lets a site have streams, and per client address.
/// The cloud enforces the same; this side enforces it against a cloud that
/// doesn't.
pub const MAX_OPEN: usize = candor_link::mux::MAX_STREAMS;
pub const MAX_PER_CLIENT: usize = 8;

/// The data connections, connecting and open. Shared by every link of the
/// recorder's run: a link's end shuts down its own and starts a new epoch,
/// so a connection still being made when it ended is never served.
#[derive(Clone, Default)]
pub(super) struct DataConns {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// A second handle on each open socket, to shut it down.
    open: HashMap<u64, std::net::TcpStream>,
    /// Places taken, connecting or open: in all, and per client.
    taken: usize,
    per_client: HashMap<IpAddr, usize>,
    next: u64,
    /// Counts the links that ended.
    epoch: u64,
    /// Data connections that failed to reach the cloud since one last did.
    failures: u32,
}

/// A place among [`MAX_OPEN`], held while a data connection is made and
/// then while it is open.
pub(super) struct Place {
    conns: DataConns,
    client: IpAddr,
    epoch: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut i = self.conns.lock();
        i.taken = i.taken.saturating_sub(1);
        if let Some(n) = i.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                i.per_client.remove(&self.client);
            }
        }
    }
}

impl DataConns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new data connection from `client`, or None at the
    /// limits.
    pub fn place(&self, client: IpAddr) -> Option<Place> {
        let mut i = self.lock();
        let mine = i.per_client.get(&client).copied().unwrap_or(0);
        if i.taken >= MAX_OPEN || mine >= MAX_PER_CLIENT {
            return None;
        }
        i.taken += 1;
        *i.per_client.entry(client).or_default() += 1;
        let epoch = i.epoch;
        Some(Place {
            conns: self.clone(),
            client,
            epoch,
        })
    }

    /// Data connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Shuts every open data connection down both ways (the web server's
    /// reads end and its writes fail, so each closes and writes its row),
    /// and refuses those still being made.
    pub fn end_all(&self) {
        let open = {
            let mut i = self.lock();
            i.epoch += 1;
            std::mem::take(&mut i.open)
        };
        for (_, s) in open {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// A data connection failed to reach the cloud; how many in a row.
    pub fn failed(&self) -> u32 {
        let mut i = self.lock();
        i.failures += 1;
        i.failures
    }

    /// Data connections that failed in a row, up to now.
    pub fn failures(&self) -> u32 {
        self.lock().failures
    }

    /// Starts the count again (the link fell back to streams for a while;
    /// afterwards data connections get a fresh try).
    pub fn forget_failures(&self) {
        self.lock().failures = 0;
    }

    /// Registers a connected socket, unless its link has ended since its
    /// place was taken.
    fn register(&self, tcp: TcpStream, place: &Place) -> std::io::Result<(u64, TcpStream)> {
        let std = tcp.into_std()?;
        let handle = std.try_clone()?;
        let tcp = TcpStream::from_std(std)?;
        let mut i = self.lock();
        if i.epoch != place.epoch {
            return Err(std::io::Error::other(
                "the link ended (remote access switched off, or the cloud lost) while it connected",
            ));
        }
        i.failures = 0;
        let id = i.next;
        i.next += 1;
        i.open.insert(id, handle);
        Ok((id, tcp))
    }

    fn forget(&self, id: u64) {
        self.lock().open.remove(&id);
    }
}

/// What a data connection's ledger row needs.
pub(super) struct Ledger {
    pub store: Arc<Store>,
    pub state: Arc<watch::Sender<LinkState>>,
    /// The cloud's address, as the link's rows name it.
    pub dest: String,
    pub client: String,
    /// Written before the web server had it: a proxy's CONNECT and the
    /// preamble.
    pub before: u64,
}

/// A data connection as the web server sees it: counts what moves, and
/// writes its ledger row when dropped.
pub(super) struct DataConn {
    inner: TcpStream,
    id: u64,
    conns: DataConns,
    _place: Place,
    ledger: Ledger,
    start: Instant,
    sent: u64,
    received: u64,
}

impl DataConn {
    pub fn new(tcp: TcpStream, place: Place, ledger: Ledger) -> std::io::Result<DataConn> {
        let conns = place.conns.clone();
        let (id, inner) = conns.register(tcp, &place)?;
        ledger.state.send_modify(|s| {
            s.remote.open += 1;
            s.remote.served += 1;
        });
        Ok(DataConn {
            inner,
            id,
            conns,
            _place: place,
            ledger,
            start: Instant::now(),
            sent: 0,
            received: 0,
        })
    }
}

impl Drop for DataConn {
    fn drop(&mut self) {
        self.conns.forget(self.id);
        let l = &self.ledger;
        l.state
            .send_modify(|s| s.remote.open = s.remote.open.saturating_sub(1));
        let wire = l.before + self.sent;
        let summary = format!(
            "remote access from {} through the cloud (a data connection), {:.0} s: \
             {} bytes sent, {} received, end-to-end encrypted between the browser and this \
             recorder (contents not shown; {wire} bytes with the connection's preamble)",
            l.client,
            self.start.elapsed().as_secs_f64(),
            self.sent,
            self.received,
        );
        row(&l.store, &l.dest, wire, summary);
    }
}

/// Writes a data connection's ledger row off the async threads (a link's
/// end drops all of them at once).
pub(super) fn row(store: &Arc<Store>, dest: &str, bytes: u64, summary: String) {
    let (store, dest) = (store.clone(), dest.to_owned());
    let write = move || {
        if let Err(e) = store.record_egress(Time90k::now(), &dest, "tunnel", bytes, &summary) {
            tracing::warn!("egress ledger: {e}");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(write)),
        Err(_) => write(),
    }
}

impl AsyncRead for DataConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.received += (buf.filled().len() - before) as u64;
        r
    }
}

impl AsyncWrite for DataConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            self.sent += *n as u64;
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.sent += *n as u64;
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

    #[test]
    fn places_are_capped_in_all_and_per_client() {
        let conns = DataConns::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mine: Vec<Place> = (0..MAX_PER_CLIENT).map_while(|_| conns.place(a)).collect();
        assert_eq!(mine.len(), MAX_PER_CLIENT);
        assert!(conns.place(a).is_none(), "a 9th for one client");
        let others: Vec<Place> = (0..100u8)
            .map_while(|i| conns.place(IpAddr::from([198, 51, 100, i])))
            .collect();
        assert_eq!(mine.len() + others.len(), MAX_OPEN);
        drop(mine);
        assert!(conns.place(a).is_some(), "places come back when dropped");
        // Failures count in a row until forgotten (the fallback's hour).
        assert_eq!((conns.failed(), conns.failed()), (1, 2));
        conns.forget_failures();
        assert_eq!(conns.failures(), 0);
    }

    /// A data connection that was still being made when its link ended
    /// (remote access switched off, say) is refused, not served.
    #[tokio::test]
    async fn a_connection_made_across_a_links_end_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let conns = DataConns::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let before = conns.place(ip).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (id, _tcp) = conns.register(tcp, &before).unwrap();
        assert_eq!(conns.open(), 1);
        let during = conns.place(ip).unwrap();
        conns.end_all();
        assert_eq!(conns.open(), 0, "shut down at the link's end");
        let late = TcpStream::connect(addr).await.unwrap();
        assert!(conns.register(late, &during).is_err());
        assert_eq!(conns.open(), 0);
        conns.forget(id);
        // The next link's connections are served.
        let next = conns.place(ip).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert!(conns.register(tcp, &next).is_ok());
    }
}
