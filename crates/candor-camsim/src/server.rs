use crate::rtsp::{self, Parsed, Request};
use crate::source::Source;
use candor_media::Codec;
use rand::Rng;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::Instant;

/// UDP packets sent back to back before a 1 ms pause.
const UDP_BURST_PACKETS: usize = 32;

/// A fault to inject into one simulated camera (tests use these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// Drops its sessions and refuses new ones, like a camera that lost power.
    Offline = 1,
    /// Keeps the session open but sends nothing.
    Stall = 2,
    /// Sends random bytes instead of RTP.
    Garbage = 3,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::Offline,
            2 => Fault::Stall,
            3 => Fault::Garbage,
            _ => Fault::None,
        }
    }
}

struct Shared {
    source: Arc<Source>,
    faults: Vec<AtomicU8>,
    sessions: AtomicUsize,
    /// Every stream paced from its PLAY exactly, with no random phase.
    aligned: std::sync::atomic::AtomicBool,
}

/// A running simulator. Dropping it (or [`CamSim::shutdown`]) closes the
/// listener and every session.
pub struct CamSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl CamSim {
    pub async fn start(
        listen: SocketAddr,
        cameras: usize,
        source: Arc<Source>,
    ) -> io::Result<CamSim> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            source,
            faults: (0..cameras).map(|_| AtomicU8::new(0)).collect(),
            sessions: AtomicUsize::new(0),
            aligned: std::sync::atomic::AtomicBool::new(false),
        });
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, shared.clone(), rx));
        Ok(CamSim {
            shared,
            addr,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, camera: usize) -> String {
        format!("rtsp://{}/cam{camera}", self.addr)
    }

    pub fn set_fault(&self, camera: usize, fault: Fault) {
        if let Some(f) = self.shared.faults.get(camera) {
            f.store(fault as u8, Ordering::Relaxed);
        }
    }

    /// Pace every stream from its PLAY exactly. By default each stream
    /// starts at a random point within one frame interval after its PLAY,
    /// as independent cameras' clocks would: a recorder whose sessions all
    /// start within the same millisecond would otherwise get every camera's
    /// frame in one burst, and take them all in one wake-up, which no real
    /// site offers (issue 17's benchmark measured the difference).
    pub fn align_phases(&self, on: bool) {
        self.shared.aligned.store(on, Ordering::Relaxed);
    }

    /// Sessions currently connected (playing or not).
    pub fn sessions(&self) -> usize {
        self.shared.sessions.load(Ordering::Relaxed)
    }

    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for CamSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        shared.sessions.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = Conn::new(stream, shared.clone()).run(shutdown).await {
                            tracing::debug!(%peer, "camsim connection ended: {e}");
                        }
                        shared.sessions.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                // EMFILE and the like: back off rather than spin.
                Err(e) => {
                    tracing::warn!("camsim accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Binds an RTP/RTCP socket pair on consecutive ports, RTP even (RFC 3550
/// 11), which clients such as retina insist on.
async fn udp_pair(ip: std::net::IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..100 {
        let rtp = UdpSocket::bind((ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free even/odd UDP port pair",
    ))
}

enum Transport {
    Tcp {
        channel: u8,
    },
    Udp {
        sock: UdpSocket,
        _rtcp: UdpSocket,
        dst: SocketAddr,
    },
}

struct Session {
    id: String,
    camera: usize,
    transport: Transport,
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    playing: Option<Instant>,
    frame: usize,
    loops: i64,
}

struct Conn {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: OwnedWriteHalf,
    local: SocketAddr,
    peer: SocketAddr,
    shared: Arc<Shared>,
    session: Option<Session>,
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Conn {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (rd, wr) = stream.into_split();
        Conn {
            rd,
            wr,
            local,
            peer,
            shared,
            session: None,
            out: Vec::with_capacity(64 * 1024),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let s = self.session.as_ref()?;
        let start = s.playing?;
        let src = &self.shared.source;
        let t = s.loops * src.duration_90k + src.frames[s.frame].time_90k;
        Some(start + Duration::from_nanos((t as u64) * 100_000 / 9))
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
        let mut inbuf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                n = self.rd.read(&mut chunk) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(());
                    }
                    inbuf.extend_from_slice(&chunk[..n]);
                    loop {
                        match rtsp::parse(&inbuf) {
                            Parsed::Incomplete => break,
                            Parsed::Interleaved { consumed } => { inbuf.drain(..consumed); }
                            Parsed::Request { req, consumed } => {
                                inbuf.drain(..consumed);
                                if !self.handle(req).await? {
                                    return Ok(());
                                }
                            }
                            Parsed::Invalid(why) => {
                                self.respond(None, "400 Bad Request", "").await?;
                                return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                            }
                        }
                    }
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    if !self.send_frame().await? {
                        return Ok(());
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    async fn respond(&mut self, cseq: Option<&str>, status: &str, extra: &str) -> io::Result<()> {
        self.respond_body(cseq, status, extra, "").await
    }

    async fn respond_body(
        &mut self,
        cseq: Option<&str>,
        status: &str,
        extra: &str,
        body: &str,
    ) -> io::Result<()> {
        let mut r = format!("RTSP/1.0 {status}\r\n");
        if let Some(c) = cseq {
            r += &format!("CSeq: {c}\r\n");
        }
        r += "Server: candor-camsim\r\n";
        r += extra;
        if !body.is_empty() {
            r += &format!("Content-Length: {}\r\n", body.len());
        }
        r += "\r\n";
        r += body;
        self.wr.write_all(r.as_bytes()).await
    }

    fn fault(&self, camera: usize) -> Fault {
        Fault::from_u8(self.shared.faults[camera].load(Ordering::Relaxed))
    }

    /// Returns false when the connection should close.
    async fn handle(&mut self, req: Request) -> io::Result<bool> {
        let cseq = req.cseq.as_deref();
        let cam = rtsp::camera_index(&req.url).filter(|&c| c < self.shared.faults.len());
        if let Some(c) = cam
            && self.fault(c) == Fault::Offline
        {
            return Ok(false); // an unpowered camera does not answer
        }
        let session_hdr = self
            .session
            .as_ref()
            .map(|s| format!("Session: {};timeout=60\r\n", s.id));
        match req.method.as_str() {
            "OPTIONS" => {
                let public = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n";
                self.respond(cseq, "200 OK", public).await?;
            }
            "DESCRIBE" => {
                let Some(c) = cam else {
                    self.respond(cseq, "404 Not Found", "").await?;
                    return Ok(true);
                };
                let src = &self.shared.source;
                let enc = match src.codec {
                    Codec::H264 => "H264",
                    Codec::H265 => "H265",
                };
                let ip = self.local.ip();
                let sdp = format!(
                    "v=0\r\no=- {} 1 IN IP4 {ip}\r\ns=Candor camsim cam{c}\r\nt=0 0\r\na=control:*\r\na=range:npt=now-\r\n\
                     m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 {enc}/90000\r\na=fmtp:96 {}\r\na=control:trackID=0\r\n",
                    rand::thread_rng().r#gen::<u32>(),
                    src.fmtp
                );
                let extra = format!(
                    "Content-Base: rtsp://{}/cam{c}/\r\nContent-Type: application/sdp\r\n",
                    self.local
                );
                self.respond_body(cseq, "200 OK", &extra, &sdp).await?;
            }
            "SETUP" => {
                let (Some(c), Some(t)) = (cam, req.transport.as_deref()) else {
                    self.respond(cseq, "400 Bad Request", "").await?;
                    return Ok(true);
                };
                let id = format!("{:016x}", rand::thread_rng().r#gen::<u64>());
                let ssrc = rand::thread_rng().r#gen::<u32>();
                let (transport, reply) = if t.contains("TCP") || t.contains("interleaved") {
                    let channel = t
                        .split(';')
                        .find_map(|p| p.trim().strip_prefix("interleaved="))
                        .and_then(|v| v.split('-').next()?.parse().ok())
                        .unwrap_or(0u8);
                    let reply = format!(
                        "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X}",
                        channel,
                        channel.wrapping_add(1)
                    );
                    (Transport::Tcp { channel }, reply)
                } else if let Some((a, b)) = rtsp::client_ports(t) {
                    let (sock, rtcp) = udp_pair(self.local.ip()).await?;
                    let (sp, sr) = (sock.local_addr()?.port(), rtcp.local_addr()?.port());
                    let reply = format!(
                        "RTP/AVP;unicast;client_port={a}-{b};server_port={sp}-{sr};ssrc={ssrc:08X}"
                    );
                    (
                        Transport::Udp {
                            sock,
                            _rtcp: rtcp,
                            dst: SocketAddr::new(self.peer.ip(), a),
                        },
                        reply,
                    )
                } else {
                    self.respond(cseq, "461 Unsupported Transport", "").await?;
                    return Ok(true);
                };
                let (seq, ts_base) = rand::thread_rng().r#gen();
                self.session = Some(Session {
                    id: id.clone(),
                    camera: c,
                    transport,
                    ssrc,
                    seq,
                    ts_base,
                    playing: None,
                    frame: 0,
                    loops: 0,
                });
                let extra = format!("Transport: {reply}\r\nSession: {id};timeout=60\r\n");
                self.respond(cseq, "200 OK", &extra).await?;
            }
            "PLAY" => {
                let Some(s) = self.session.as_mut() else {
                    self.respond(cseq, "454 Session Not Found", "").await?;
                    return Ok(true);
                };
                let src = &self.shared.source;
                let interval_90k = src.duration_90k / src.frames.len().max(1) as i64;
                let phase = if self.shared.aligned.load(Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    Duration::from_nanos((interval_90k.max(0) as u64) * 100_000 / 9)
                        .mul_f64(rand::random::<f64>())
                };
                s.playing = Some(Instant::now() + phase);
                let extra = format!(
                    "{}Range: npt=now-\r\nRTP-Info: url=rtsp://{}/cam{}/trackID=0;seq={};rtptime={}\r\n",
                    session_hdr.unwrap_or_default(),
                    self.local,
                    s.camera,
                    s.seq,
                    s.ts_base
                );
                self.respond(cseq, "200 OK", &extra).await?;
            }
            "GET_PARAMETER" | "SET_PARAMETER" => {
                self.respond(cseq, "200 OK", &session_hdr.unwrap_or_default())
                    .await?;
            }
            "TEARDOWN" => {
                self.respond(cseq, "200 OK", "").await?;
                return Ok(false);
            }
            _ => self.respond(cseq, "501 Not Implemented", "").await?,
        }
        Ok(true)
    }

    /// Sends the session's next frame. Returns false when the connection should close.
    async fn send_frame(&mut self) -> io::Result<bool> {
        let Some(s) = self.session.as_mut() else {
            return Ok(true);
        };
        let src = self.shared.source.clone();
        let fault = Fault::from_u8(self.shared.faults[s.camera].load(Ordering::Relaxed));
        let frame = &src.frames[s.frame];
        let ts = s
            .ts_base
            .wrapping_add((s.loops * src.duration_90k + frame.time_90k) as u32);
        s.frame += 1;
        if s.frame == src.frames.len() {
            s.frame = 0;
            s.loops += 1;
        }
        match fault {
            Fault::Offline => return Ok(false),
            Fault::Stall => return Ok(true),
            Fault::Garbage => {
                let junk: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
                match &s.transport {
                    Transport::Tcp { .. } => self.wr.write_all(&junk).await?,
                    Transport::Udp { sock, dst, .. } => {
                        let _ = sock.send_to(&junk[..1200], *dst).await;
                    }
                }
                return Ok(true);
            }
            Fault::None => {}
        }
        let n = frame.payloads.len();
        self.out.clear();
        for (i, p) in frame.payloads.iter().enumerate() {
            let marker = if i + 1 == n { 0x80 } else { 0 };
            let mut hdr = [0u8; 12];
            hdr[0] = 0x80; // version 2
            hdr[1] = marker | 96;
            hdr[2..4].copy_from_slice(&s.seq.to_be_bytes());
            hdr[4..8].copy_from_slice(&ts.to_be_bytes());
            hdr[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
            s.seq = s.seq.wrapping_add(1);
            match &s.transport {
                Transport::Tcp { channel } => {
                    self.out.push(b'$');
                    self.out.push(*channel);
                    self.out
                        .extend_from_slice(&((12 + p.len()) as u16).to_be_bytes());
                    self.out.extend_from_slice(&hdr);
                    self.out.extend_from_slice(p);
                }
                Transport::Udp { sock, dst, .. } => {
                    self.out.clear();
                    self.out.extend_from_slice(&hdr);
                    self.out.extend_from_slice(p);
                    // UDP loss is the client's problem, as with a real camera.
                    let _ = sock.send_to(&self.out, *dst).await;
                    // A real camera's burst is paced by its 100 Mbit/s port; on
                    // loopback an unpaced key frame can overflow a default-sized
                    // socket buffer before the client is scheduled. Pace at
                    // ~360 Mbit/s.
                    if i % UDP_BURST_PACKETS == UDP_BURST_PACKETS - 1 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
        if matches!(s.transport, Transport::Tcp { .. }) {
            self.wr.write_all(&self.out).await?;
        }
        Ok(true)
    }
}
