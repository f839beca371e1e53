//! Streams over one link, without I/O: what to write next, and how much
//! each side may send (docs/design/remote.md, "Streams").
//!
//! - **Credit per stream**, as in HTTP/2: each side may have at most
//!   [`WINDOW`] bytes of a stream in flight; the receiver grants more with a
//!   `Credit` frame as its reader drains. A phone that stops reading stops
//!   its own stream and nothing else.
//! - **Control first**: alarms, status and pings go before any stream data;
//!   stream data goes round-robin in chunks of at most [`CHUNK`], so an alarm
//!   waits behind one chunk at most.
//! - **Limits**: [`MAX_STREAMS`] per link and [`MAX_BUFFERED`] bytes queued in
//!   all; the owner of the byte source stops reading while [`Mux::queued`]
//!   of its stream is at [`WINDOW`] (back-pressure to the socket).

use crate::{Frame, Message};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// Bytes of a stream one side may send before the other grants more.
pub const WINDOW: u32 = 256 * 1024;
/// The most stream bytes in one frame.
pub const CHUNK: usize = 16 * 1024;
/// Open streams per link (per site).
pub const MAX_STREAMS: usize = 32;
/// Stream bytes queued for sending, all streams together.
pub const MAX_BUFFERED: usize = 8 * 1024 * 1024;
/// Control messages, and credits or closes, waiting to be written: a peer
/// that stops reading while it makes this side answer (pings, refused
/// opens) fills these, and then loses the link instead of the memory.
pub const MAX_QUEUED_FRAMES: usize = 4096;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("too many streams on this link (at most {MAX_STREAMS})")]
    TooManyStreams,
    #[error("stream {0} is already open")]
    Exists(u32),
    #[error("no stream {0}")]
    Unknown(u32),
    #[error("more than {MAX_BUFFERED} bytes queued on the link")]
    Buffered,
    #[error("the peer sent more on stream {0} than it was granted")]
    Overrun(u32),
    #[error("credit on stream {0} beyond any window")]
    Credit(u32),
    #[error("more than {MAX_QUEUED_FRAMES} frames wait to be written: the peer is not reading")]
    Backlog,
}

/// Payloads shorter than this are gathered into one buffer with the short
/// ones around them: a queue entry costs about 64 bytes whatever it holds,
/// so a peer sending 1-byte frames or segments would otherwise make a
/// stream's queue 64× the bytes it counts.
pub const SMALL: usize = 4 * 1024;
// A slice kept whole is then at least a quarter of a chunk's buffer.
const _: () = assert!(SMALL * 4 >= CHUNK);

/// Chunks in order; short ones gathered (see [`SMALL`]).
#[derive(Default)]
pub(crate) struct Chunks {
    queue: VecDeque<Bytes>,
    /// Short payloads that came after the last queued chunk.
    tail: bytes::BytesMut,
}

impl Chunks {
    /// Appends, gathering short payloads; an empty one is nothing.
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
        } else if b.len() < SMALL {
            self.tail.extend_from_slice(&b);
        } else {
            self.seal();
            self.queue.push_back(b);
        }
    }

    /// Appends as it is, never gathered (an open's payload, which goes
    /// whole in its own frame).
    pub fn push_whole(&mut self, b: Bytes) {
        self.seal();
        self.queue.push_back(b);
    }

    /// The gathered bytes become a chunk of their own: a copy of exactly
    /// their length (a slice would keep the whole gathering buffer alive).
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.queue.push_back(Bytes::copy_from_slice(&self.tail));
            self.tail.clear();
            // What an idle stream keeps is small (a link has 64 of these).
            if self.tail.capacity() > 2 * SMALL {
                self.tail = bytes::BytesMut::new();
            }
        }
    }

    pub fn front_mut(&mut self) -> Option<&mut Bytes> {
        if self.queue.is_empty() {
            self.seal();
        }
        self.queue.front_mut()
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.queue.is_empty() {
            self.seal();
        }
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.tail.is_empty()
    }

    /// Everything, in order.
    pub fn take(&mut self) -> VecDeque<Bytes> {
        self.seal();
        std::mem::take(&mut self.queue)
    }

    /// Queue entries (for tests of the bound).
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.queue.len() + usize::from(!self.tail.is_empty())
    }
}

#[derive(Default)]
struct Stream {
    /// Frames to send, in order (the open, if not sent yet, then data).
    queue: Chunks,
    queued: usize,
    open_pending: bool,
    close_pending: bool,
    /// What we may still send.
    send_credit: u32,
    /// What the peer may still send, and what our reader drained since the
    /// last grant.
    recv_credit: u32,
    drained: u32,
}

/// One side of a link's streams.
#[derive(Default)]
pub struct Mux {
    control: VecDeque<Message>,
    /// Credits and resets: small, and they unblock the peer, so they go
    /// right after control messages.
    extra: VecDeque<Frame>,
    streams: BTreeMap<u32, Stream>,
    /// Round-robin order of streams.
    turn: VecDeque<u32>,
    buffered: usize,
}

impl Mux {
    pub fn new() -> Mux {
        Mux::default()
    }

    /// Queues a control message; it goes before any stream data.
    pub fn control(&mut self, m: Message) -> Result<(), MuxError> {
        if self.control.len() >= MAX_QUEUED_FRAMES {
            return Err(MuxError::Backlog);
        }
        self.control.push_back(m);
        Ok(())
    }

    fn extra(&mut self, f: Frame) -> Result<(), MuxError> {
        if self.extra.len() >= MAX_QUEUED_FRAMES {
            return Err(MuxError::Backlog);
        }
        self.extra.push_back(f);
        Ok(())
    }

    fn new_stream(&mut self, id: u32) -> Result<&mut Stream, MuxError> {
        if self.streams.contains_key(&id) {
            return Err(MuxError::Exists(id));
        }
        if self.streams.len() >= MAX_STREAMS {
            return Err(MuxError::TooManyStreams);
        }
        self.turn.push_back(id);
        Ok(self.streams.entry(id).or_insert(Stream {
            send_credit: WINDOW,
            recv_credit: WINDOW,
            ..Default::default()
        }))
    }

    /// Opens a stream from this side, with its first bytes (the browser's
    /// ClientHello, at the cloud). The first bytes count against the window.
    /// Beyond [`CHUNK`], the first bytes follow the open as data.
    pub fn open(&mut self, id: u32, first: Vec<u8>) -> Result<(), MuxError> {
        let mut first = Bytes::from(first);
        let rest = first.split_off(first.len().min(CHUNK));
        if self.buffered + first.len() + rest.len() > MAX_BUFFERED {
            return Err(MuxError::Buffered);
        }
        let n = first.len();
        let s = self.new_stream(id)?;
        s.open_pending = true;
        s.queued += first.len();
        s.queue.push_whole(first);
        self.buffered += n;
        if !rest.is_empty() {
            self.send(id, rest)?;
        }
        Ok(())
    }

    /// Whether the stream is open (not closed by either side).
    pub fn is_open(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// The peer opened a stream; `first` is what it carried (counted against
    /// our window like data).
    pub fn opened(&mut self, id: u32, first: usize) -> Result<(), MuxError> {
        self.new_stream(id)?;
        self.received(id, first)
    }

    fn buffered_add(&mut self, n: usize) -> Result<(), MuxError> {
        if self.buffered + n > MAX_BUFFERED {
            return Err(MuxError::Buffered);
        }
        self.buffered += n;
        Ok(())
    }

    /// Queues stream bytes. The caller reads its source only while
    /// [`Self::queued`] is under [`WINDOW`], so one stream never fills the link.
    /// The bytes are queued as they are, not copied: chunks are slices.
    pub fn send(&mut self, id: u32, mut data: Bytes) -> Result<(), MuxError> {
        if !self.streams.contains_key(&id) {
            return Err(MuxError::Unknown(id));
        }
        self.buffered_add(data.len())?;
        let s = self.streams.get_mut(&id).expect("checked above");
        s.queued += data.len();
        while !data.is_empty() {
            s.queue.push(data.split_to(data.len().min(CHUNK)));
        }
        Ok(())
    }

    /// Bytes of the stream waiting to be sent.
    pub fn queued(&self, id: u32) -> usize {
        self.streams.get(&id).map_or(0, |s| s.queued)
    }

    /// Closes the stream from this side once its queued bytes are out.
    pub fn close(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.close_pending = true;
        }
    }

    /// Ends the stream now: its queued bytes are dropped and a `Close` goes
    /// before any stream data (an idle or failed stream, whose queue may
    /// never drain).
    pub fn abort(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.buffered -= s.queued;
            self.turn.retain(|&t| t != id);
            // Past the backlog cap the link is failing anyway; the stream is
            // gone here either way.
            let _ = self.extra(Frame::Close { stream: id });
        }
    }

    /// The link ended: every stream goes, control messages stay.
    pub fn drop_streams(&mut self) {
        self.streams.clear();
        self.turn.clear();
        self.extra.clear();
        self.buffered = 0;
    }

    /// Answers a peer's open this side will not serve. An id that is open
    /// is the peer's error (it would close a live stream).
    pub fn refuse(&mut self, id: u32) -> Result<(), MuxError> {
        if self.streams.contains_key(&id) {
            return Err(MuxError::Exists(id));
        }
        self.extra(Frame::Close { stream: id })
    }

    /// The peer closed the stream: forget it (its queued bytes too).
    pub fn closed(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.buffered -= s.queued;
            self.turn.retain(|&t| t != id);
        }
    }

    /// The peer granted `bytes` more on the stream.
    pub fn credit(&mut self, id: u32, bytes: u32) -> Result<(), MuxError> {
        let Some(s) = self.streams.get_mut(&id) else {
            // A grant can cross a close: not an error.
            return Ok(());
        };
        s.send_credit = s
            .send_credit
            .checked_add(bytes)
            .filter(|&c| c <= 2 * WINDOW)
            .ok_or(MuxError::Credit(id))?;
        Ok(())
    }

    /// The peer sent `n` bytes on the stream: within what we granted, or a
    /// protocol error (close the link).
    pub fn received(&mut self, id: u32, n: usize) -> Result<(), MuxError> {
        let s = self.streams.get_mut(&id).ok_or(MuxError::Unknown(id))?;
        let n = u32::try_from(n).map_err(|_| MuxError::Overrun(id))?;
        s.recv_credit = s.recv_credit.checked_sub(n).ok_or(MuxError::Overrun(id))?;
        Ok(())
    }

    /// Our reader drained `n` bytes of the stream: a `Credit` frame is
    /// queued when half a window has been drained since the last one (true
    /// then: the writer has something to send).
    pub fn drained(&mut self, id: u32, n: usize) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return false;
        };
        s.drained = s.drained.saturating_add(n.min(WINDOW as usize) as u32);
        if s.drained < WINDOW / 2 {
            return false;
        }
        let bytes = std::mem::take(&mut s.drained);
        s.recv_credit = s.recv_credit.saturating_add(bytes);
        // At most one grant per half window drained: bounded by the streams.
        self.extra.push_back(Frame::Credit { stream: id, bytes });
        true
    }

    /// The next frame to write, if any may go now: control messages first,
    /// then one chunk of the next stream (round-robin) that has bytes and
    /// credit, or a close whose stream has sent everything.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if let Some(m) = self.control.pop_front() {
            return Some(Frame::Control(m));
        }
        if let Some(f) = self.extra.pop_front() {
            return Some(f);
        }
        for _ in 0..self.turn.len() {
            let id = self.turn.pop_front()?;
            self.turn.push_back(id);
            let s = self.streams.get_mut(&id).expect("turn lists open streams");
            // The open goes first and whole (it announces the stream, and
            // may carry nothing).
            if s.open_pending {
                let len = s.queue.front_mut().map_or(0, |b| b.len());
                if len as u32 > s.send_credit {
                    continue;
                }
                let payload = s.queue.pop_front().unwrap_or_default();
                s.open_pending = false;
                s.queued -= len;
                s.send_credit -= len as u32;
                self.buffered -= len;
                return Some(Frame::Open {
                    stream: id,
                    payload: Vec::from(payload),
                });
            }
            if let Some(front) = s.queue.front_mut() {
                let can = (s.send_credit as usize).min(front.len()).min(CHUNK);
                if can == 0 {
                    continue;
                }
                let payload = if can == front.len() {
                    s.queue.pop_front().expect("front exists")
                } else {
                    front.split_to(can)
                };
                s.queued -= payload.len();
                s.send_credit -= payload.len() as u32;
                self.buffered -= payload.len();
                return Some(Frame::Data {
                    stream: id,
                    payload,
                });
            }
            if s.close_pending {
                self.streams.remove(&id);
                self.turn.retain(|&t| t != id);
                return Some(Frame::Close { stream: id });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut Mux) -> Vec<Frame> {
        std::iter::from_fn(|| m.next_frame()).collect()
    }

    fn bytes_of(frames: &[Frame], id: u32) -> usize {
        frames
            .iter()
            .map(|f| match f {
                Frame::Open { stream, payload } if *stream == id => payload.len(),
                Frame::Data { stream, payload } if *stream == id => payload.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn control_goes_before_any_stream_data() {
        let mut m = Mux::new();
        m.open(1, vec![0; 100]).unwrap();
        m.send(1, vec![1; 100_000].into()).unwrap();
        let first = m.next_frame().unwrap();
        assert!(matches!(first, Frame::Open { stream: 1, .. }));
        m.control(Message::Ping { nonce: 7 }).unwrap();
        assert_eq!(
            m.next_frame(),
            Some(Frame::Control(Message::Ping { nonce: 7 }))
        );
    }

    #[test]
    fn a_stalled_stream_stops_alone_and_credit_resumes_it() {
        let mut m = Mux::new();
        m.open(1, vec![]).unwrap();
        m.open(3, vec![]).unwrap();
        m.send(1, vec![1; 1024 * 1024].into()).unwrap();
        m.send(3, vec![3; 40_000].into()).unwrap();
        let frames = drain(&mut m);
        // Stream 1 stops at its window; stream 3 (and its open) all went.
        assert_eq!(bytes_of(&frames, 1), WINDOW as usize);
        assert_eq!(bytes_of(&frames, 3), 40_000);
        assert!(frames.iter().all(|f| match f {
            Frame::Data { payload, .. } => payload.len() <= CHUNK,
            Frame::Open { payload, .. } => payload.len() <= CHUNK,
            _ => true,
        }));
        // Nothing more until the phone reads: then exactly the credit.
        assert_eq!(m.next_frame(), None);
        m.control(Message::Ping { nonce: 1 }).unwrap();
        assert!(
            matches!(m.next_frame(), Some(Frame::Control(_))),
            "control still flows"
        );
        m.credit(1, 100_000).unwrap();
        assert_eq!(bytes_of(&drain(&mut m), 1), 100_000);
        assert_eq!(m.queued(1), 1024 * 1024 - WINDOW as usize - 100_000);
    }

    #[test]
    fn tiny_payloads_are_gathered_so_a_queue_entry_never_costs_more_than_its_bytes() {
        let mut c = Chunks::default();
        for i in 0..WINDOW {
            c.push(Bytes::copy_from_slice(&[(i % 251) as u8]));
        }
        c.push(Bytes::new());
        assert_eq!(c.entries(), 1, "a window of 1-byte payloads is one entry");
        let all = c.take();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].len(), WINDOW as usize);
        assert!(
            all[0]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8)
        );
        // Short and long ones alternating: at most two entries per long one,
        // and the order holds.
        let mut c = Chunks::default();
        let mut want = Vec::new();
        for i in 0..100u8 {
            let short = Bytes::from(vec![i; 1]);
            let long = Bytes::from(vec![i; SMALL]);
            want.extend_from_slice(&short);
            want.extend_from_slice(&long);
            c.push(short);
            c.push(long);
        }
        assert!(c.entries() <= 200);
        let got: Vec<u8> = c.take().iter().flat_map(|b| b.iter().copied()).collect();
        assert!(got == want);
        // Through the mux: 1-byte sends leave as a few full chunks.
        let mut m = Mux::new();
        m.open(1, vec![]).unwrap();
        for _ in 0..3 * CHUNK {
            m.send(1, Bytes::from_static(b"x")).unwrap();
        }
        let frames = drain(&mut m);
        assert_eq!(bytes_of(&frames, 1), 3 * CHUNK);
        assert_eq!(frames.len(), 1 + 3, "the open, then three full chunks");
    }

    #[test]
    fn streams_take_turns() {
        let mut m = Mux::new();
        for id in [1, 3] {
            m.open(id, vec![]).unwrap();
            m.send(id, vec![0; 4 * CHUNK].into()).unwrap();
        }
        let order: Vec<u32> = drain(&mut m)
            .iter()
            .filter_map(|f| match f {
                Frame::Data { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect();
        assert_eq!(order, [1, 3, 1, 3, 1, 3, 1, 3]);
    }

    #[test]
    fn limits_hold() {
        let mut m = Mux::new();
        for id in 0..MAX_STREAMS as u32 {
            m.open(2 * id + 1, vec![]).unwrap();
        }
        assert_eq!(m.open(999, vec![]), Err(MuxError::TooManyStreams));
        assert_eq!(m.open(1, vec![]), Err(MuxError::Exists(1)));
        assert_eq!(
            m.send(998, Bytes::from_static(b"x")),
            Err(MuxError::Unknown(998))
        );
        m.send(1, vec![0; MAX_BUFFERED].into()).unwrap();
        assert_eq!(
            m.send(3, Bytes::from_static(b"one more")),
            Err(MuxError::Buffered)
        );
        assert_eq!(m.credit(1, 2 * WINDOW), Err(MuxError::Credit(1)));
        // A close of the peer frees what the stream had queued.
        m.closed(1);
        m.send(3, Bytes::from_static(b"fits again")).unwrap();
    }

    #[test]
    fn the_receiver_grants_half_windows_and_refuses_overruns() {
        let mut m = Mux::new();
        m.opened(2, 500).unwrap();
        m.received(2, WINDOW as usize - 500).unwrap();
        assert_eq!(m.received(2, 1), Err(MuxError::Overrun(2)));
        assert!(!m.drained(2, 1000));
        assert!(m.drained(2, WINDOW as usize / 2));
        assert_eq!(
            m.next_frame(),
            Some(Frame::Credit {
                stream: 2,
                bytes: WINDOW / 2 + 1000
            })
        );
        m.received(2, (WINDOW / 2 + 1000) as usize).unwrap();
    }

    #[test]
    fn an_abort_goes_at_once_and_frees_the_queue() {
        let mut m = Mux::new();
        m.open(7, vec![0; 3 * CHUNK]).unwrap();
        assert_eq!(m.queued(7), 3 * CHUNK);
        m.send(7, vec![0; WINDOW as usize].into()).unwrap();
        m.abort(7);
        assert!(!m.is_open(7));
        assert_eq!(m.next_frame(), Some(Frame::Close { stream: 7 }));
        assert_eq!(m.next_frame(), None);
        // Everything it had queued is free again.
        m.open(9, vec![]).unwrap();
        m.send(9, vec![0; MAX_BUFFERED].into()).unwrap();
    }

    #[test]
    fn a_peer_that_never_reads_hits_the_backlog_cap() {
        let mut m = Mux::new();
        for i in 0..MAX_QUEUED_FRAMES as u64 {
            m.control(Message::Ping { nonce: i }).unwrap();
        }
        assert_eq!(
            m.control(Message::Ping { nonce: 0 }),
            Err(MuxError::Backlog)
        );
        let mut m = Mux::new();
        for id in 0..MAX_QUEUED_FRAMES as u32 {
            m.refuse(2 * id + 1).unwrap();
        }
        assert_eq!(m.refuse(1_000_001), Err(MuxError::Backlog));
        // Refusing an open stream would close it under its owner.
        let mut m = Mux::new();
        m.opened(3, 0).unwrap();
        assert_eq!(m.refuse(3), Err(MuxError::Exists(3)));
    }

    #[test]
    fn a_close_follows_the_last_byte() {
        let mut m = Mux::new();
        m.open(5, b"hello".to_vec()).unwrap();
        m.send(5, Bytes::from_static(b" world")).unwrap();
        m.close(5);
        let frames = drain(&mut m);
        assert!(matches!(frames.last(), Some(Frame::Close { stream: 5 })));
        assert_eq!(bytes_of(&frames, 5), 11);
        assert_eq!(m.queued(5), 0);
    }

    #[test]
    fn credit_frames_round_trip_and_are_exactly_four_bytes() {
        let f = Frame::Credit {
            stream: 9,
            bytes: 123_456,
        };
        let bytes = crate::encode(&f).unwrap();
        let mut d = crate::Decoder::new();
        d.push(&bytes);
        assert_eq!(d.next_frame().unwrap(), Some(f));
        let mut d = crate::Decoder::new();
        d.push(&[crate::VERSION, 4, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(crate::LinkError::Credit(5)));
    }
}
