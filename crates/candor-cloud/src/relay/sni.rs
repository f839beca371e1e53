//! The server name a browser asks for, read from its TLS ClientHello
//! without answering it: rustls's `Acceptor` parses the hello (the same
//! parser the cloud's own TLS uses, fuzzed upstream), and the bytes are kept
//! to be passed on untouched. Sans-I/O: [`peek`] takes what was read so far.

use rustls::server::Acceptor;

/// The most bytes read before deciding: one TLS record of 16 KiB and its
/// header. A ClientHello with post-quantum key shares is about 2 KB.
pub const MAX_HELLO: usize = 16 * 1024 + 5;

#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Not a whole ClientHello yet: read more (up to [`MAX_HELLO`]).
    NeedMore,
    /// A ClientHello; `sni` is its server name (none for IP addresses).
    Hello { sni: Option<String> },
    /// Not TLS, a broken hello, or too long: close the connection.
    NotTls,
}

/// Looks at the bytes a client sent first.
pub fn peek(buf: &[u8]) -> Peek {
    if buf.len() > MAX_HELLO {
        return Peek::NotTls;
    }
    let mut acceptor = Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Peek::NotTls,
        }
    }
    match acceptor.accept() {
        Ok(None) if buf.len() < MAX_HELLO => Peek::NeedMore,
        Ok(None) => Peek::NotTls,
        Ok(Some(accepted)) => Peek::Hello {
            sni: accepted
                .client_hello()
                .server_name()
                .map(str::to_ascii_lowercase),
        },
        Err(_) => Peek::NotTls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first flight of a real TLS client (rustls) asking for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn the_server_name_is_read_without_answering() {
        let hello = client_hello("Home-7Q2X.remote.example");
        assert_eq!(
            peek(&hello),
            Peek::Hello {
                sni: Some("home-7q2x.remote.example".into())
            }
        );
    }

    #[test]
    fn a_hello_in_pieces_asks_for_more_until_whole() {
        let hello = client_hello("site.remote.example");
        for cut in [0, 1, 5, 9, hello.len() / 2, hello.len() - 1] {
            assert_eq!(peek(&hello[..cut]), Peek::NeedMore, "cut at {cut}");
        }
    }

    #[test]
    fn an_address_has_no_server_name() {
        let hello = client_hello("127.0.0.1");
        assert_eq!(peek(&hello), Peek::Hello { sni: None });
    }

    #[test]
    fn plain_http_garbage_and_floods_are_refused() {
        assert_eq!(peek(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Peek::NotTls);
        // A handshake record announced, not yet all here: wait for it …
        assert_eq!(peek(&[0x16, 3, 1, 0x02, 0x00, 1, 2, 3]), Peek::NeedMore);
        // … unless it claims more than a record may hold.
        assert_eq!(peek(&[0x16, 3, 1, 0xff, 0xff, 1, 2, 3]), Peek::NotTls);
        assert_eq!(peek(&vec![0x16; MAX_HELLO + 1]), Peek::NotTls);
        // A record that claims to be a handshake but holds no hello.
        let mut bogus = vec![0x16, 3, 3, 0, 4];
        bogus.extend_from_slice(&[2, 0, 0, 0]);
        assert_eq!(peek(&bogus), Peek::NotTls);
    }
}
