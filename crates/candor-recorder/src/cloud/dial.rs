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
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The open data connections, by id: a second handle on each socket, to
/// shut it down when the link ends.
#[derive(Clone, Default)]
pub(super) struct DataConns {
    open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
    next: Arc<AtomicU64>,
}

impl DataConns {
    /// Shuts every open data connection down both ways: the web server's
    /// reads end and its writes fail, so each closes and writes its row.
    pub fn end_all(&self) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, s) in open {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn register(&self, tcp: TcpStream) -> std::io::Result<(u64, TcpStream)> {
        let std = tcp.into_std()?;
        let handle = std.try_clone()?;
        let tcp = TcpStream::from_std(std)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, handle);
        Ok((id, tcp))
    }

    fn forget(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
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
    ledger: Ledger,
    start: Instant,
    sent: u64,
    received: u64,
}

impl DataConn {
    pub fn new(tcp: TcpStream, conns: &DataConns, ledger: Ledger) -> std::io::Result<DataConn> {
        let (id, inner) = conns.register(tcp)?;
        ledger.state.send_modify(|s| {
            s.remote.open += 1;
            s.remote.served += 1;
        });
        Ok(DataConn {
            inner,
            id,
            conns: conns.clone(),
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
        if let Err(e) = l
            .store
            .record_egress(Time90k::now(), &l.dest, "tunnel", wire, &summary)
        {
            tracing::warn!("egress ledger: {e}");
        }
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
