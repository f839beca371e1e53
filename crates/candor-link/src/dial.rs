//! Data connections for remote access (docs/design/remote.md, "Data
//! connections"). For each browser the cloud sends the recorder a
//! [`Message::Dial`](crate::Message::Dial) over the link; the recorder opens
//! a new TCP connection to the cloud's address (the one its link uses, never
//! one the cloud names) and writes [`preamble`]; the cloud matches the token
//! to the waiting browser and from then on copies bytes between the two
//! sockets without reading them. What crosses is the browser's TLS to the
//! recorder, so the data connection needs no TLS of its own: neither the
//! cloud nor anyone on the path can read or alter it undetected. The token
//! only pairs the two sockets (32 random bytes, single use, valid for
//! seconds); someone who steals it gets the browser's ciphertext, which the
//! cloud already has, and cannot finish the handshake without the
//! recorder's key.

/// Hex digits of a token (32 random bytes).
pub const TOKEN_LEN: usize = 64;
/// What a data connection starts with, before its token and a newline.
/// Not a TLS record (0x16), so the cloud's port tells the two apart.
pub const MAGIC: &[u8] = b"CANDOR-DIAL/1 ";
/// The whole preamble's length.
pub const PREAMBLE_LEN: usize = MAGIC.len() + TOKEN_LEN + 1;
/// The longest client address a dial carries.
pub const MAX_CLIENT: usize = 64;

/// Whether `s` is a token: [`TOKEN_LEN`] lowercase hex digits.
pub fn is_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The first bytes of a data connection.
pub fn preamble(token: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(PREAMBLE_LEN);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(token.as_bytes());
    p.push(b'\n');
    p
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// A prefix of a preamble so far.
    NeedMore,
    /// Not a data connection (or a malformed one).
    No,
    /// A data connection with this token; the preamble is
    /// [`PREAMBLE_LEN`] bytes.
    Dial(String),
}

/// Reads a preamble from the start of `buf`.
pub fn peek(buf: &[u8]) -> Peek {
    let n = buf.len().min(MAGIC.len());
    if buf[..n] != MAGIC[..n] {
        return Peek::No;
    }
    if buf.len() < PREAMBLE_LEN {
        let hex = &buf[n..];
        return if hex
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            Peek::NeedMore
        } else {
            Peek::No
        };
    }
    match std::str::from_utf8(&buf[MAGIC.len()..PREAMBLE_LEN - 1]) {
        Ok(t) if is_token(t) && buf[PREAMBLE_LEN - 1] == b'\n' => Peek::Dial(t.to_owned()),
        _ => Peek::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preamble_reads_back_whole_and_nothing_else_passes() {
        let t = "0123456789abcdef".repeat(4);
        let p = preamble(&t);
        assert_eq!(p.len(), PREAMBLE_LEN);
        assert_eq!(peek(&p), Peek::Dial(t.clone()));
        // With what follows (the recorder sends nothing more, but a peer may).
        assert_eq!(peek(&[&p[..], b"more"].concat()), Peek::Dial(t.clone()));
        for cut in 0..PREAMBLE_LEN {
            assert_eq!(peek(&p[..cut]), Peek::NeedMore, "{cut}");
        }
        let mut upper = p.clone();
        upper[MAGIC.len()] = b'A';
        assert_eq!(peek(&upper), Peek::No);
        assert_eq!(peek(&upper[..MAGIC.len() + 1]), Peek::No, "refused early");
        let mut no_newline = p.clone();
        no_newline[PREAMBLE_LEN - 1] = b' ';
        assert_eq!(peek(&no_newline), Peek::No);
        // A TLS ClientHello, HTTP, and a near miss of the magic.
        assert_eq!(peek(&[0x16, 3, 1, 0, 200]), Peek::No);
        assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Peek::No);
        assert_eq!(peek(b"CANDOR-DIAL/2 "), Peek::No);
        assert!(!is_token(&t[1..]));
        assert!(!is_token(&format!("{}g", &t[1..])));
    }
}
