//! The link's network side: TCP (directly or through an HTTP CONNECT
//! proxy), TLS 1.3 with the recorder's key, trust in the cloud's
//! certificate, byte counting for the ledger, and failures in words.

use crate::config::{CloudAddress, CloudConfig};
use candor_link::identity::Identity;
use candor_link::tunnel::{Inbound, Tunnel};
use candor_link::{Decoder, Frame, Message};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP stream that counts what it writes, so the ledger can state the
/// bytes that really went on the wire.
pub struct Counting {
    inner: TcpStream,
    /// Every byte written on this connection, the proxy's CONNECT and the
    /// TLS handshake included; shared, so a failed handshake's bytes are
    /// known after the stream is gone.
    pub(super) written: Arc<AtomicU64>,
}

impl Counting {
    pub(super) fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }

    pub(super) fn new(inner: TcpStream, written: Arc<AtomicU64>) -> Counting {
        Counting { inner, written }
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(super) type Conn = tokio_rustls::client::TlsStream<Counting>;

/// One connection's reading side, and the tunnel that writes (control
/// messages and remote-access streams: `candor_link::tunnel`).
pub(super) struct LinkIo {
    pub rd: tokio::io::ReadHalf<Conn>,
    pub tunnel: Tunnel,
    pub decoder: Decoder,
    /// Bytes already in the ledger as rows (messages, heartbeats, tunnels).
    pub ledgered: u64,
    /// The TLS handshake settled on data connections (ALPN
    /// `candor-link/1+dial`).
    pub dial: bool,
}

/// What the cloud sent that the shell acts on.
pub(super) enum In {
    Message(Message),
    /// A browser, through the cloud's relay.
    Open {
        stream: u32,
        client: String,
        first: Vec<u8>,
    },
}

impl LinkIo {
    /// The next message or stream open. Stream data is handled on the way;
    /// with `streams` false (pairing) any stream frame is a protocol error.
    /// Cancel-safe: the decoder keeps what arrived.
    pub async fn next(&mut self, streams: bool) -> Result<In, String> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => {
                    if !streams && !matches!(f, Frame::Control(_)) {
                        return Err("protocol error: a stream frame while pairing".into());
                    }
                    match self.tunnel.on_frame(f, true) {
                        Ok(Inbound::Control(m)) => {
                            if !m.from_cloud() {
                                return Err(format!("protocol error: the cloud sent {}", m.name()));
                            }
                            return Ok(In::Message(m));
                        }
                        Ok(Inbound::Open {
                            stream,
                            client,
                            first,
                        }) => {
                            return Ok(In::Open {
                                stream,
                                client,
                                first,
                            });
                        }
                        Ok(Inbound::Done) => continue,
                        Err(e) => return Err(format!("protocol error: {e}")),
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(format!("protocol error: {e}")),
            }
            // Straight into the decoder's buffer (cancel-safe: what a read
            // took stays there).
            let n = self
                .rd
                .read_buf(self.decoder.read_room())
                .await
                .map_err(|e| format!("receiving: {}", in_words(&e)))?;
            if n == 0 {
                return Err("the cloud closed the connection".into());
            }
        }
    }

    /// Queues a message whose ledger row is written (`n` bytes on the wire).
    pub fn write(&mut self, m: Message, n: u64) -> Result<(), String> {
        self.ledgered += n;
        self.tunnel.control(m).map_err(|e| format!("sending: {e}"))
    }
}

/// The certificates a server's must chain to: the PEM file `ca` (set as
/// config `key`, e.g. `[cloud] ca`, which errors name), else the public
/// web roots.
pub fn trust_roots(
    ca: Option<&std::path::Path>,
    key: &str,
) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let Some(p) = ca else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let f = std::fs::File::open(p).map_err(|e| format!("{key} {}: {e}", p.display()))?;
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
        let c = c.map_err(|e| format!("{key} {}: {e}", p.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{key} {}: {e}", p.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate in it (a file starting with -----BEGIN CERTIFICATE-----, \
             such as the cert.pem the cloud logs at start)",
            p.display()
        ));
    }
    Ok(roots)
}

/// Connects and shakes hands; every byte written goes into `written`.
/// With `dial` false the link offers only streams (ALPN `candor-link/1`).
pub(super) async fn connect(
    config: &CloudConfig,
    identity: &Identity,
    written: Arc<AtomicU64>,
    dial: bool,
) -> Result<Conn, String> {
    let roots = trust_roots(config.ca.as_deref(), "[cloud] ca")?;
    let mut tls = identity.client_config(roots).map_err(|e| e.to_string())?;
    if !dial {
        tls.alpn_protocols = vec![candor_link::ALPN.to_vec()];
    }
    let tcp = tokio::time::timeout(Duration::from_secs(15), tcp(config, &written))
        .await
        .map_err(|_| format!("connecting to {} timed out", config.address))??;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(config.address.host.clone())
        .map_err(|e| format!("[cloud] address: {e}"))?;
    let conn = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(
            name,
            Counting {
                inner: tcp,
                written,
            },
        ),
    )
    .await
    .map_err(|_| "TLS handshake with the cloud timed out".to_string())?
    .map_err(|e| format!("TLS with {}: {}", config.address, in_words(&e)))?;
    Ok(conn)
}

/// A link failure in the owner's words: what happened and what to do,
/// rather than the TLS library's message.
pub(super) fn in_words(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error as Tls};
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "the cloud closed the connection without saying goodbye (it may have restarted, or the network dropped)".into();
    }
    match e.get_ref().and_then(|i| i.downcast_ref::<Tls>()) {
        Some(Tls::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "the cloud's certificate is not trusted: if the cloud uses its generated certificate, copy that file \
             (the cloud logs its path at start) to this recorder and set [cloud] ca to it; or give the cloud \
             a certificate from a public CA"
                .into()
        }
        Some(Tls::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => "the cloud's certificate is not valid for the name in [cloud] address: add that name to the \
               cloud's `hostnames` (generated certificate) or use a certificate issued for it"
            .into(),
        Some(Tls::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            "the cloud's certificate has expired (or this recorder's clock is wrong)".into()
        }
        _ => e.to_string(),
    }
}

async fn tcp(config: &CloudConfig, written: &AtomicU64) -> Result<TcpStream, String> {
    tcp_to(config.proxy.as_ref(), &config.address, written).await
}

/// TCP to `target`, through the CONNECT `proxy` if set; what is written to
/// the proxy counts into `written`.
pub(super) async fn tcp_to(
    proxy: Option<&CloudAddress>,
    target: &CloudAddress,
    written: &AtomicU64,
) -> Result<TcpStream, String> {
    let Some(proxy) = proxy else {
        return tokio::time::timeout(
            Duration::from_secs(15),
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| format!("connecting to {target} timed out"))?
        .map_err(|e| format!("connecting to {target}: {e}"));
    };
    let mut s = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| format!("connecting to proxy {proxy}: {e}"))?;
    let target = target.to_string();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    written.fetch_add(request.len() as u64, Ordering::Relaxed);
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("proxy {proxy}: {e}"))?;
    // Read the proxy's answer byte by byte up to the blank line, so no byte
    // of the TLS stream that follows is consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(format!("proxy {proxy}: answer too long"));
        }
        let b = s
            .read_u8()
            .await
            .map_err(|e| format!("proxy {proxy}: {e}"))?;
        head.push(b);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or("");
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("proxy {proxy} refused CONNECT {target}: {line}"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::in_words;
    use std::io::{Error, ErrorKind};

    #[test]
    fn link_failures_are_said_in_the_owners_words() {
        let eof = Error::new(
            ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        let said = in_words(&eof);
        assert!(
            said.contains("closed the connection") && !said.contains("docs.rs"),
            "{said}"
        );
        let untrusted = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(in_words(&untrusted).contains("[cloud] ca"));
        let wrong_name = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        );
        assert!(in_words(&wrong_name).contains("hostnames"));
        let other = Error::new(ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(in_words(&other), "connection refused");
    }
}
