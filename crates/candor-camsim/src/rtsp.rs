//! Just enough RTSP/1.0 (RFC 2326) request parsing for the simulator. Input is
//! untrusted bytes from the network: limits are enforced and nothing panics.

/// Longest request head accepted; real clients send a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub cseq: Option<String>,
    pub transport: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Incomplete,
    /// An interleaved binary packet (e.g. RTCP from the client), to skip.
    Interleaved {
        consumed: usize,
    },
    Request {
        req: Request,
        consumed: usize,
    },
    Invalid(&'static str),
}

pub fn parse(buf: &[u8]) -> Parsed {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Parsed::Incomplete;
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        return if buf.len() < 4 + len {
            Parsed::Incomplete
        } else {
            Parsed::Interleaved { consumed: 4 + len }
        };
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Parsed::Invalid("request head too long")
        } else {
            Parsed::Incomplete
        };
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid("request head is not UTF-8");
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(url), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Parsed::Invalid("malformed request line");
    };
    if version != "RTSP/1.0" {
        return Parsed::Invalid("not RTSP/1.0");
    }
    let mut req = Request {
        method: method.to_owned(),
        url: url.to_owned(),
        cseq: None,
        transport: None,
    };
    let mut content_length = 0usize;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "cseq" => req.cseq = Some(v.to_owned()),
            "transport" => req.transport = Some(v.to_owned()),
            "content-length" => match v.parse() {
                Ok(n) if n <= MAX_HEAD => content_length = n,
                _ => return Parsed::Invalid("bad Content-Length"),
            },
            _ => {}
        }
    }
    let consumed = end + 4 + content_length;
    if buf.len() < consumed {
        return Parsed::Incomplete;
    }
    Parsed::Request { req, consumed }
}

/// Camera index from a URL like `rtsp://host:port/cam3` or `…/cam3/trackID=0`.
pub fn camera_index(url: &str) -> Option<usize> {
    let path = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or(url);
    let seg = path.trim_start_matches('/').split('/').next()?;
    seg.strip_prefix("cam")?.parse().ok()
}

/// The `client_port=a-b` of a UDP transport request.
pub fn client_ports(transport: &str) -> Option<(u16, u16)> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("client_port="))?;
    let (a, b) = v.split_once('-').unwrap_or((v, v));
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_setup_request() {
        let raw = b"SETUP rtsp://127.0.0.1:8554/cam2/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\nextra";
        let Parsed::Request { req, consumed } = parse(raw) else {
            panic!()
        };
        assert_eq!(consumed, raw.len() - 5);
        assert_eq!(req.cseq.as_deref(), Some("3"));
        assert_eq!(camera_index(&req.url), Some(2));
        assert_eq!(
            client_ports(req.transport.as_deref().unwrap()),
            Some((5000, 5001))
        );
    }

    #[test]
    fn hostile_input_is_rejected_without_panic() {
        assert_eq!(
            parse(b"GARBAGE\r\n\r\n"),
            Parsed::Invalid("malformed request line")
        );
        assert_eq!(
            parse(&vec![b'A'; MAX_HEAD + 1]),
            Parsed::Invalid("request head too long")
        );
        assert_eq!(parse(b"$\x00\xff\xff"), Parsed::Incomplete);
        assert_eq!(camera_index("rtsp://h/camX"), None);
        assert_eq!(camera_index("rtsp://h/cam99999999999999999999999"), None);
    }
}
