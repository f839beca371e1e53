//! Streams over a live link, with tokio: the I/O shell around [`Mux`]
//! (docs/design/remote.md). Both ends use it; only the cloud opens streams.
//!
//! - One **writer task** owns the link's write half. It takes frames from
//!   the mux (control first, then credits and resets, then stream chunks in
//!   turn) and writes them in batches, so a slow socket on either side never
//!   blocks the reader: a link whose two ends both stopped reading while
//!   writing would deadlock.
//! - Each stream is attached to a byte socket (the browser's TCP connection
//!   at the cloud, one end of an in-memory pipe to the web server at the
//!   recorder) by two pumps:
//!   - *up* reads the socket only while the stream has less than a window
//!     queued (a semaphore of [`WINDOW`] permits the writer gives back as
//!     the bytes leave), so a stalled peer stops reading the socket, not
//!     the link;
//!   - *down* writes what the peer sent, then grants the peer credit for it.
//!     What waits for the socket is bounded by the window the peer was given.
//! - A stream ends when either side sends `Close` (it ends both ways), when
//!   its socket fails or ends, when nothing moved on it for the idle time,
//!   or when the link ends. Data that crosses a close is dropped.

use crate::mux::{CHUNK, Chunks, Mux, MuxError, WINDOW};
use crate::{Frame, Message};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc};

/// A browser's bytes, at either end: its TCP connection at the cloud
/// (however wrapped), a stream over the link or a data connection at the
/// recorder.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Bytes the writer gathers before one write to the link.
const BATCH: usize = 64 * 1024;
/// The longest client address an open carries.
pub const MAX_CLIENT: usize = 64;

/// A link-fatal error: the peer broke the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TunnelError {
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error("this side does not accept streams from its peer (stream {0})")]
    Unexpected(u32),
    #[error("a stream's open does not say which client it is for")]
    Client,
    #[error("invalid control message: {0}")]
    Invalid(String),
    #[error("the link has ended")]
    Ended,
}

/// What a frame from the peer is for the caller.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// A control message.
    Control(Message),
    /// The peer opens a stream (only the cloud does): [`Tunnel::accept`] or
    /// [`Tunnel::refuse`] it.
    Open {
        stream: u32,
        /// The client's address as the cloud saw it.
        client: String,
        first: Vec<u8>,
    },
    /// Handled here (stream data, credit, a close).
    Done,
}

/// A stream that ended, for the ledger and the session list.
#[derive(Clone, Debug)]
pub struct Ended {
    pub stream: u32,
    pub client: String,
    pub opened: std::time::SystemTime,
    pub duration: Duration,
    /// Stream bytes this side sent and received (payloads).
    pub sent: u64,
    pub received: u64,
    /// Everything this side wrote for the stream: frame headers, credits
    /// and the close included.
    pub wire: u64,
    pub why: &'static str,
}

struct Stream {
    up: Arc<Semaphore>,
    down: Arc<Pipe>,
    up_task: Option<tokio::task::AbortHandle>,
    down_task: Option<tokio::task::AbortHandle>,
    last: Instant,
    client: String,
    opened: std::time::SystemTime,
    started: Instant,
    sent: u64,
    received: u64,
    wire: u64,
}

/// A stream's socket, for writing.
type Sink = Box<dyn AsyncWrite + Send + Unpin>;

/// What the peer sent on a stream, as received (slices of the link's read
/// buffers, [`crate::Decoder`]), until the socket takes it; and the
/// socket's write half while no one is writing to it.
///
/// The link's reader writes a chunk to the socket itself when nothing is
/// queued and the pump is idle, without blocking (a system call, no task
/// wake: at a player's pace that is most chunks). Whatever the socket does
/// not take at once is queued for the pump, which waits for the socket.
/// Order holds: the reader writes only when the queue is empty and the
/// pump does not hold the socket.
#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    ready: Notify,
}

#[derive(Default)]
struct PipeState {
    chunks: Chunks,
    closed: bool,
    /// `None` while the pump writes (or before the stream is attached).
    sink: Option<Sink>,
    /// The reader wrote, and the socket's flush did not finish at once.
    unflushed: bool,
}

impl Pipe {
    /// Passes bytes on; returns how many the socket took at once (the rest
    /// is queued for the pump).
    fn push(&self, mut bytes: Bytes) -> usize {
        let mut st = lock(&self.state);
        let mut wrote = 0;
        if st.chunks.is_empty()
            && !st.closed
            && let Some(sink) = st.sink.as_mut()
        {
            // A waker that does nothing: if the socket is not ready, the
            // bytes go to the pump, which polls with its own.
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(Ok(n)) =
                std::pin::Pin::new(&mut *sink).poll_write(&mut cx, &bytes)
            {
                wrote = n.min(bytes.len());
                bytes.advance(wrote);
                if wrote > 0
                    && !matches!(
                        std::pin::Pin::new(&mut *sink).poll_flush(&mut cx),
                        std::task::Poll::Ready(Ok(()))
                    )
                {
                    st.unflushed = true;
                }
            }
            if bytes.is_empty() && !st.unflushed {
                return wrote;
            }
            // What the socket left of a slice is copied: the slice was
            // judged worth its read buffer whole, not its remainder.
            if wrote > 0 && !bytes.is_empty() {
                bytes = Bytes::copy_from_slice(&bytes);
            }
        }
        st.chunks.push(bytes);
        drop(st);
        self.ready.notify_one();
        wrote
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_one();
    }

    /// Waits for work, then takes the socket and what is queued: the
    /// chunks, whether the stream ended after them, whether a flush is
    /// owed. `None`: the socket is gone.
    async fn take(&self) -> Option<(Sink, VecDeque<Bytes>, bool, bool)> {
        loop {
            {
                let mut st = lock(&self.state);
                if !st.chunks.is_empty() || st.closed || st.unflushed {
                    let sink = st.sink.take()?;
                    let flush = std::mem::take(&mut st.unflushed);
                    return Some((sink, st.chunks.take(), st.closed, flush));
                }
            }
            self.ready.notified().await;
        }
    }

    /// The pump is done writing: the socket is the reader's to use again.
    fn give_back(&self, sink: Sink) {
        lock(&self.state).sink = Some(sink);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    mux: Mux,
    streams: HashMap<u32, Stream>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
    dead: AtomicBool,
    gone: Notify,
    idle: Duration,
    ended: Option<mpsc::UnboundedSender<Ended>>,
}

/// One side of a link's streams. Cheap to clone.
#[derive(Clone)]
pub struct Tunnel {
    shared: Arc<Shared>,
}

/// The writer task's outcome: the write half back (to shut the link down
/// cleanly), and why it stopped.
pub type WriterResult<W> = (W, std::io::Result<()>);

impl Tunnel {
    /// Starts the writer on the link's write half. `idle`: a stream on which
    /// nothing moved for this long is closed. Each stream that ends is
    /// reported on `ended`.
    pub fn start<W>(
        write: W,
        idle: Duration,
        ended: Option<mpsc::UnboundedSender<Ended>>,
    ) -> (Tunnel, tokio::task::JoinHandle<WriterResult<W>>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                mux: Mux::new(),
                streams: HashMap::new(),
            }),
            wake: Notify::new(),
            dead: AtomicBool::new(false),
            gone: Notify::new(),
            idle,
            ended,
        });
        let writer = tokio::spawn(write_loop(shared.clone(), write));
        tokio::spawn(idle_sweep(Arc::downgrade(&shared)));
        (Tunnel { shared }, writer)
    }

    /// Queues a control message (before any stream data). An invalid one
    /// (too large, a field out of range) is refused here, not on the wire.
    pub fn control(&self, m: Message) -> Result<(), TunnelError> {
        m.validate().map_err(TunnelError::Invalid)?;
        if self.shared.dead.load(Ordering::Relaxed) {
            return Err(TunnelError::Ended);
        }
        lock(&self.shared.inner).mux.control(m)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Resolves once the tunnel has ended ([`Self::end`], or the writer
    /// failed).
    pub async fn ended(&self) {
        let n = self.shared.gone.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.shared.dead.load(Ordering::SeqCst) {
            return;
        }
        n.await;
    }

    /// Open streams.
    pub fn streams(&self) -> usize {
        lock(&self.shared.inner).streams.len()
    }

    /// Handles one frame from the peer. An error ends the link.
    pub fn on_frame(&self, frame: Frame, accept_opens: bool) -> Result<Inbound, TunnelError> {
        match frame {
            Frame::Control(m) => Ok(Inbound::Control(m)),
            Frame::Open { stream, payload } => {
                if !accept_opens {
                    return Err(TunnelError::Unexpected(stream));
                }
                let (client, first) = split_open(&payload).ok_or(TunnelError::Client)?;
                Ok(Inbound::Open {
                    stream,
                    client,
                    first: first.to_vec(),
                })
            }
            Frame::Data { stream, payload } => {
                let mut g = lock(&self.shared.inner);
                let Inner { mux, streams } = &mut *g;
                // Data crossing our close: dropped.
                let Some(s) = streams.get_mut(&stream) else {
                    return Ok(Inbound::Done);
                };
                mux.received(stream, payload.len())?;
                s.received += payload.len() as u64;
                s.last = Instant::now();
                let pipe = s.down.clone();
                // The socket is written outside the link's lock.
                drop(g);
                let wrote = pipe.push(payload);
                if wrote > 0 && lock(&self.shared.inner).mux.drained(stream, wrote) {
                    self.shared.wake.notify_one();
                }
                Ok(Inbound::Done)
            }
            Frame::Credit { stream, bytes } => {
                lock(&self.shared.inner).mux.credit(stream, bytes)?;
                self.shared.wake.notify_one();
                Ok(Inbound::Done)
            }
            Frame::Close { stream } => {
                let mut g = lock(&self.shared.inner);
                g.mux.closed(stream);
                if let Some(s) = g.streams.remove(&stream) {
                    drop(g);
                    self.finish(stream, s, "closed by the peer");
                }
                Ok(Inbound::Done)
            }
        }
    }

    /// Opens a stream to the peer (the cloud, for a browser): `first` are
    /// the bytes already read from `io` (the ClientHello).
    pub fn open<S>(&self, stream: u32, client: &str, first: &[u8], io: S) -> Result<(), MuxError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mut payload = Vec::with_capacity(1 + client.len() + first.len());
        let client = &client.as_bytes()[..client.len().min(MAX_CLIENT)];
        payload.push(client.len() as u8);
        payload.extend_from_slice(client);
        payload.extend_from_slice(first);
        let mut g = lock(&self.shared.inner);
        g.mux.open(stream, payload)?;
        let client = String::from_utf8_lossy(client).into_owned();
        self.attach(&mut g, stream, client, io, Vec::new());
        drop(g);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Serves a stream the peer opened on `io`, which first receives `first`.
    pub fn accept<S>(
        &self,
        stream: u32,
        client: String,
        first: &[u8],
        io: S,
    ) -> Result<(), TunnelError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mut g = lock(&self.shared.inner);
        // The whole open payload counts against the window we granted.
        g.mux.opened(stream, 1 + client.len() + first.len())?;
        self.attach(&mut g, stream, client, io, first.to_vec());
        Ok(())
    }

    /// Declines a stream the peer opened (remote access off, too many). An
    /// error (the id is open, or the peer stopped reading) ends the link.
    pub fn refuse(&self, stream: u32) -> Result<(), TunnelError> {
        lock(&self.shared.inner).mux.refuse(stream)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    fn attach<S>(&self, g: &mut Inner, stream: u32, client: String, io: S, first: Vec<u8>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let up = Arc::new(Semaphore::new(WINDOW as usize));
        let down = Arc::new(Pipe::default());
        let received = first.len() as u64;
        if !first.is_empty() {
            down.push(first.into());
        }
        // After the first bytes: queued, they go before anything the
        // reader could write.
        down.give_back(Box::new(w));
        let up_task = tokio::spawn(pump_up(self.clone(), stream, r, up.clone())).abort_handle();
        let down_task = tokio::spawn(pump_down(self.clone(), stream, down.clone())).abort_handle();
        g.streams.insert(
            stream,
            Stream {
                up,
                down,
                up_task: Some(up_task),
                down_task: Some(down_task),
                last: Instant::now(),
                client,
                opened: std::time::SystemTime::now(),
                started: Instant::now(),
                sent: 0,
                received,
                wire: 0,
            },
        );
    }

    /// Ends a stream from this side at once (idle, its socket failed): what
    /// waits for the socket is dropped with it.
    fn abort(&self, stream: u32, why: &'static str) {
        let mut g = lock(&self.shared.inner);
        g.mux.abort(stream);
        let s = g.streams.remove(&stream);
        drop(g);
        self.shared.wake.notify_one();
        if let Some(mut s) = s {
            if let Some(t) = s.down_task.take() {
                t.abort();
            }
            self.finish(stream, s, why);
        }
    }

    fn finish(&self, stream: u32, mut s: Stream, why: &'static str) {
        s.down.close();
        s.up.close();
        if let Some(t) = s.up_task.take() {
            t.abort();
        }
        if let Some(tx) = &self.shared.ended {
            let _ = tx.send(Ended {
                stream,
                client: s.client,
                opened: s.opened,
                duration: s.started.elapsed(),
                sent: s.sent,
                received: s.received,
                wire: s.wire,
                why,
            });
        }
    }

    /// The link ended: every stream ends, and the writer stops once it has
    /// written what it holds.
    pub fn end(&self) {
        self.shared.dead.store(true, Ordering::SeqCst);
        self.shared.gone.notify_waiters();
        let all: Vec<(u32, Stream)> = {
            let mut g = lock(&self.shared.inner);
            g.mux.drop_streams();
            g.streams.drain().collect()
        };
        for (id, s) in all {
            self.finish(id, s, "the link ended");
        }
        self.shared.wake.notify_one();
    }
}

/// An open's payload: one byte n, n bytes of the client's address, then the
/// stream's first bytes.
fn split_open(payload: &[u8]) -> Option<(String, &[u8])> {
    let (&n, rest) = payload.split_first()?;
    let n = usize::from(n);
    if n > MAX_CLIENT || rest.len() < n {
        return None;
    }
    let client = std::str::from_utf8(&rest[..n]).ok()?;
    if !client.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some((client.to_owned(), &rest[n..]))
}

async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut w: W) -> WriterResult<W> {
    let mut out = Vec::with_capacity(BATCH + CHUNK + 64);
    loop {
        let mut ended = Vec::new();
        {
            let mut g = lock(&shared.inner);
            let Inner { mux, streams } = &mut *g;
            while out.len() < BATCH {
                let Some(f) = mux.next_frame() else { break };
                let before = out.len();
                if crate::encode_into(&f, &mut out).is_err() {
                    // Only a control message that fails validation can: a
                    // bug on this side, not worth the link. Callers validate
                    // what they queue ([`Tunnel::control`]).
                    continue;
                }
                let framed = (out.len() - before) as u64;
                match &f {
                    Frame::Data { stream, payload } => {
                        if let Some(s) = streams.get_mut(stream) {
                            s.up.add_permits(payload.len());
                            s.sent += payload.len() as u64;
                            s.wire += framed;
                            s.last = Instant::now();
                        }
                    }
                    Frame::Open { stream, .. } | Frame::Credit { stream, .. } => {
                        if let Some(s) = streams.get_mut(stream) {
                            s.wire += framed;
                        }
                    }
                    Frame::Close { stream } => {
                        // Our close after the socket ended: the stream is
                        // over (unless the close answered a refused open
                        // whose id is open again: then it is not ours).
                        if !mux.is_open(*stream)
                            && let Some(mut s) = streams.remove(stream)
                        {
                            s.wire += framed;
                            ended.push((*stream, s));
                        }
                    }
                    Frame::Control(_) => {}
                }
            }
        }
        if !ended.is_empty() {
            let t = Tunnel {
                shared: shared.clone(),
            };
            for (id, s) in ended {
                t.finish(id, s, "closed by this side");
            }
        }
        if out.is_empty() {
            if shared.dead.load(Ordering::Relaxed) {
                let r = w.flush().await;
                return (w, r);
            }
            if let Err(e) = w.flush().await {
                return fail(&shared, w, e);
            }
            shared.wake.notified().await;
            continue;
        }
        if let Err(e) = w.write_all(&out).await {
            return fail(&shared, w, e);
        }
        out.clear();
    }
}

fn fail<W>(shared: &Arc<Shared>, w: W, e: std::io::Error) -> WriterResult<W> {
    let t = Tunnel {
        shared: shared.clone(),
    };
    t.end();
    (w, Err(e))
}

async fn pump_up<R: AsyncRead + Unpin>(t: Tunnel, stream: u32, mut r: R, up: Arc<Semaphore>) {
    let mut buf = BytesMut::new();
    loop {
        let Ok(permit) = up.acquire_many(CHUNK as u32).await else {
            return;
        };
        // The same buffer again once what was read into it has left (or
        // was gathered: below), else a new one of a chunk.
        buf.reserve(CHUNK);
        let n = match r.read_buf(&mut (&mut buf).limit(CHUNK)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        permit.forget();
        up.add_permits(CHUNK - n);
        // What was read goes as a slice of the buffer: the send queue copies
        // a short one out ([`crate::mux::SMALL`]), so a slice it keeps is at
        // least a quarter of its buffer.
        let data = buf.split().freeze();
        let mut g = lock(&t.shared.inner);
        let Inner { mux, streams } = &mut *g;
        let Some(s) = streams.get_mut(&stream) else {
            return;
        };
        s.last = Instant::now();
        if mux.send(stream, data).is_err() {
            drop(g);
            t.abort(stream, "the link's buffer is full");
            return;
        }
        drop(g);
        t.shared.wake.notify_one();
    }
    // The socket ended: close after what is queued.
    lock(&t.shared.inner).mux.close(stream);
    t.shared.wake.notify_one();
}

/// Writes every chunk, several per system call where the socket takes
/// vectored writes (a TCP socket does): no copy into one buffer first.
async fn write_chunks<W: AsyncWrite + Unpin>(
    w: &mut W,
    chunks: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    chunks.retain(|c| !c.is_empty());
    while let Some(front) = chunks.front() {
        let mut n = if w.is_write_vectored() {
            let mut slices = [std::io::IoSlice::new(&[]); 16];
            let k = chunks.len().min(slices.len());
            for (s, c) in slices.iter_mut().zip(chunks.iter()) {
                *s = std::io::IoSlice::new(c);
            }
            w.write_vectored(&slices[..k]).await?
        } else {
            w.write(front).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let front = chunks.front_mut().expect("written bytes were queued");
            if n < front.len() {
                front.advance(n);
                break;
            }
            n -= front.len();
            chunks.pop_front();
        }
    }
    Ok(())
}

async fn pump_down(t: Tunnel, stream: u32, pipe: Arc<Pipe>) {
    // A socket that takes nothing for the idle time is dead (a client that
    // advertises a zero window for ever): the write gives up, so the task,
    // its buffer and the socket go.
    let idle = t.shared.idle;
    loop {
        let Some((mut w, mut chunks, closed, flush)) = pipe.take().await else {
            // Only the pump takes the socket, and gives it back: not reached.
            debug_assert!(false, "the socket was taken by someone else");
            t.abort(stream, "internal: the socket was gone");
            return;
        };
        let len: usize = chunks.iter().map(Bytes::len).sum();
        if len > 0 || flush {
            let wrote = tokio::time::timeout(idle, async {
                write_chunks(&mut w, &mut chunks).await?;
                w.flush().await
            })
            .await;
            if !matches!(wrote, Ok(Ok(()))) {
                t.abort(stream, "the socket failed or stopped reading");
                return;
            }
            let mut g = lock(&t.shared.inner);
            if let Some(s) = g.streams.get_mut(&stream) {
                s.last = Instant::now();
            }
            let grant = g.mux.drained(stream, len);
            drop(g);
            if grant {
                t.shared.wake.notify_one();
            }
        }
        if closed {
            let _ = tokio::time::timeout(idle, w.shutdown()).await;
            return;
        }
        pipe.give_back(w);
    }
}

async fn idle_sweep(shared: std::sync::Weak<Shared>) {
    let every = match shared.upgrade() {
        Some(s) => (s.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.dead.load(Ordering::Relaxed) {
            return;
        }
        let stale: Vec<u32> = lock(&shared.inner)
            .streams
            .iter()
            .filter(|(_, s)| s.last.elapsed() >= shared.idle)
            .map(|(id, _)| *id)
            .collect();
        let t = Tunnel { shared };
        for id in stale {
            t.abort(id, "idle");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tokio::io::DuplexStream;

    /// Takes at most 7 bytes per call, vectored or not.
    struct Trickle {
        got: Vec<u8>,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            b: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = b.len().min(7);
            self.got.extend_from_slice(&b[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut left = 7;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(7 - left))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn chunks_are_written_whole_and_in_order_however_the_socket_splits_them() {
        let want: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        for vectored in [true, false] {
            // Chunks of odd sizes, more than one vectored write holds.
            let mut chunks: VecDeque<Bytes> = VecDeque::new();
            let mut at = 0;
            let mut k = 1;
            while at < want.len() {
                let n = (k * 13).min(want.len() - at);
                chunks.push_back(Bytes::copy_from_slice(&want[at..at + n]));
                at += n;
                k += 1;
            }
            assert!(chunks.len() > 16);
            let mut w = Trickle {
                got: Vec::new(),
                vectored,
            };
            write_chunks(&mut w, &mut chunks).await.unwrap();
            assert!(chunks.is_empty());
            assert!(w.got == want, "vectored: {vectored}");
        }
    }

    /// Two tunnels joined by an in-memory link, each side's reader feeding
    /// its tunnel; the "recorder" side serves opens with `serve`.
    struct Pair {
        cloud: Tunnel,
        recorder: Tunnel,
        opens: mpsc::UnboundedReceiver<(u32, String, Vec<u8>)>,
        cloud_ended: mpsc::UnboundedReceiver<Ended>,
        rec_ended: mpsc::UnboundedReceiver<Ended>,
    }

    fn reader(
        t: Tunnel,
        mut r: tokio::io::ReadHalf<DuplexStream>,
        accept: bool,
        opens: Option<mpsc::UnboundedSender<(u32, String, Vec<u8>)>>,
    ) {
        tokio::spawn(async move {
            let mut d = crate::Decoder::new();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = r.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    t.end();
                    return;
                }
                d.push(&buf[..n]);
                while let Some(f) = d.next_frame().unwrap() {
                    match t.on_frame(f, accept).unwrap() {
                        Inbound::Open {
                            stream,
                            client,
                            first,
                        } => {
                            opens
                                .as_ref()
                                .unwrap()
                                .send((stream, client, first))
                                .unwrap();
                        }
                        Inbound::Control(_) | Inbound::Done => {}
                    }
                }
            }
        });
    }

    fn pair(idle: Duration) -> Pair {
        pair_idle(idle, idle)
    }

    fn pair_idle(cloud_idle: Duration, recorder_idle: Duration) -> Pair {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (ctx, cloud_ended) = mpsc::unbounded_channel();
        let (rtx, rec_ended) = mpsc::unbounded_channel();
        let (cloud, _) = Tunnel::start(aw, cloud_idle, Some(ctx));
        let (recorder, _) = Tunnel::start(bw, recorder_idle, Some(rtx));
        let (otx, opens) = mpsc::unbounded_channel();
        reader(cloud.clone(), ar, false, None);
        reader(recorder.clone(), br, true, Some(otx));
        Pair {
            cloud,
            recorder,
            opens,
            cloud_ended,
            rec_ended,
        }
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_and_a_close_ends_both_sides() {
        let mut p = pair(Duration::from_secs(60));
        let (mut browser, cloud_end) = tokio::io::duplex(1024);
        p.cloud
            .open(1, "203.0.113.9:5000", b"hello", cloud_end)
            .unwrap();
        let (id, client, first) = p.opens.recv().await.unwrap();
        assert_eq!(
            (id, client.as_str(), first.as_slice()),
            (1, "203.0.113.9:5000", &b"hello"[..])
        );
        let (mut server, rec_end) = tokio::io::duplex(1024);
        p.recorder.accept(id, client, &first, rec_end).unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // 1 MB each way, more than any window: credit must flow.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let b2 = big.clone();
        let w = tokio::spawn(async move {
            server.write_all(&b2).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut back = Vec::new();
        browser.read_to_end(&mut back).await.unwrap();
        assert_eq!(back.len(), big.len());
        assert!(back == big);
        drop(w.await.unwrap());
        let e = p.rec_ended.recv().await.unwrap();
        assert_eq!(e.sent, 1_000_000);
        assert_eq!(e.why, "closed by this side");
        let c = p.cloud_ended.recv().await.unwrap();
        assert_eq!(c.received, 1_000_000);
        assert_eq!(c.why, "closed by the peer");
        assert_eq!(p.cloud.streams() + p.recorder.streams(), 0);
    }

    #[tokio::test]
    async fn a_stalled_reader_stops_its_stream_only() {
        let mut p = pair(Duration::from_secs(60));
        let (_stalled_browser, s1) = tokio::io::duplex(1024);
        let (mut reading_browser, s2) = tokio::io::duplex(1024);
        p.cloud.open(1, "a", b"", s1).unwrap();
        p.cloud.open(3, "b", b"", s2).unwrap();
        let mut servers = Vec::new();
        for _ in 0..2 {
            let (id, client, first) = p.opens.recv().await.unwrap();
            let (server, end) = tokio::io::duplex(1024);
            p.recorder.accept(id, client, &first, end).unwrap();
            servers.push((id, server));
        }
        servers.sort_by_key(|s| s.0);
        let (_, mut to_stalled) = servers.remove(0);
        let (_, mut to_reading) = servers.remove(0);
        // The stalled browser reads nothing: its server can write about a
        // window (plus the pipes' buffers), then blocks.
        let written = Arc::new(AtomicU64::new(0));
        let w2 = written.clone();
        let stalled = tokio::spawn(async move {
            let chunk = vec![7u8; 1024];
            while to_stalled.write_all(&chunk).await.is_ok() {
                w2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        // Meanwhile the other stream moves 2 MB, and control still flows.
        let w = tokio::spawn(async move {
            to_reading.write_all(&vec![1u8; 2_000_000]).await.unwrap();
            to_reading
        });
        let mut got = vec![0u8; 2_000_000];
        tokio::time::timeout(
            Duration::from_secs(10),
            reading_browser.read_exact(&mut got),
        )
        .await
        .expect("the second stream is not held up")
        .unwrap();
        drop(w.await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!stalled.is_finished(), "the stalled stream's writer blocks");
        // What it got rid of is bounded: a window queued at the recorder, a
        // window at the cloud, and the two in-memory pipes' buffers.
        let n = written.load(Ordering::Relaxed);
        assert!(
            n <= 2 * u64::from(WINDOW) + 8 * 1024,
            "{n} bytes left a writer whose reader reads nothing"
        );
        assert!(n >= u64::from(WINDOW), "{n}: the window was used");
        stalled.abort();
    }

    #[tokio::test]
    async fn idle_streams_end_and_refusals_close() {
        // Only the recorder's timer is short: with both alike, whichever side
        // fires first decides whether the recorder sees "idle" or a close.
        let mut p = pair_idle(Duration::from_secs(60), Duration::from_millis(300));
        let (mut browser, s) = tokio::io::duplex(1024);
        p.cloud.open(5, "c", b"x", s).unwrap();
        let (id, client, first) = p.opens.recv().await.unwrap();
        let (_server, end) = tokio::io::duplex(1024);
        p.recorder.accept(id, client, &first, end).unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), p.rec_ended.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.why, "idle");
        let mut rest = Vec::new();
        browser.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the browser's socket is closed");
        // A refused open closes the cloud's side.
        let (mut b2, s2) = tokio::io::duplex(1024);
        p.cloud.open(7, "d", b"x", s2).unwrap();
        let (id, _, _) = p.opens.recv().await.unwrap();
        p.recorder.refuse(id).unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), b2.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.cloud.streams(), 0);
    }

    #[test]
    fn open_payloads_name_a_client() {
        assert_eq!(
            split_open(b"\x041.2.hello"),
            Some(("1.2.".to_string(), &b"hello"[..]))
        );
        assert_eq!(split_open(b""), None);
        assert_eq!(split_open(b"\x09short"), None);
        assert_eq!(split_open(b"\x02a hi"), None, "no spaces");
        let mut long = vec![65u8];
        long.extend(std::iter::repeat_n(b'a', 65));
        assert_eq!(split_open(&long), None);
    }

    #[tokio::test]
    async fn the_recorder_side_refuses_nothing_it_did_not_ask_for() {
        let (a, _b) = tokio::io::duplex(1024);
        let (t, _) = Tunnel::start(a, Duration::from_secs(1), None);
        let open = Frame::Open {
            stream: 1,
            payload: b"\x01ax".to_vec(),
        };
        assert_eq!(t.on_frame(open, false), Err(TunnelError::Unexpected(1)));
        // Data for a stream that does not exist (crossed a close) is dropped.
        let data = Frame::Data {
            stream: 9,
            payload: vec![1; 10].into(),
        };
        assert_eq!(t.on_frame(data, false), Ok(Inbound::Done));
    }
}
