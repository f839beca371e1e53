//! SOAP 1.2 requests as ONVIF wants them, WS-Security UsernameToken
//! (PasswordDigest), and SOAP faults.

use crate::xml::{self, Element, XmlError};
use base64::Engine as _;
use sha1::{Digest, Sha1};

pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";
const NS_WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// Camera credentials and the moment to claim, in the camera's clock.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// A fresh random nonce per request (16 bytes is usual): cameras reject
    /// a nonce they have seen, which is what stops replays.
    pub nonce: &'a [u8],
    /// RFC 3339 UTC, *camera* time: the local clock corrected by the offset
    /// learnt from GetSystemDateAndTime, or cameras refuse the token.
    pub created: &'a str,
}

/// Base64(SHA-1(nonce ‖ created ‖ password)), WS-Security UsernameToken
/// Profile 1.0 §3.1.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn security_header(c: &Credentials<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        concat!(
            r#"<s:Header><wsse:Security s:mustUnderstand="1" xmlns:wsse="{wsse}" xmlns:wsu="{wsu}">"#,
            r#"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"#,
            r#"<wsse:Password Type="{pd}">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="{b64t}">{nonce}</wsse:Nonce>"#,
            r#"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>"#
        ),
        wsse = NS_WSSE,
        wsu = NS_WSU,
        user = escape(c.username),
        pd = PASSWORD_DIGEST,
        digest = password_digest(c.nonce, c.created, c.password),
        b64t = BASE64_BINARY,
        nonce = b64.encode(c.nonce),
        created = escape(c.created),
    )
}

/// A complete request envelope around `body` (which uses the `tds`, `trt`
/// and `tt` prefixes), with WS-Security when credentials are given.
pub fn envelope(body: &str, creds: Option<&Credentials<'_>>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{NS_SOAP}" xmlns:tds="{NS_DEVICE}" xmlns:trt="{NS_MEDIA}" xmlns:tt="{NS_SCHEMA}">{}<s:Body>{body}</s:Body></s:Envelope>"#,
        creds.map(security_header).unwrap_or_default()
    )
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SoapError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not a SOAP envelope")]
    NotSoap,
    /// `ter:NotAuthorized` and friends: the subcode says why.
    #[error("camera refused: {code}{} ({reason})", subcode.as_deref().map(|s| format!("/{s}")).unwrap_or_default())]
    Fault {
        code: String,
        subcode: Option<String>,
        reason: String,
    },
    #[error("the camera's answer lacks {0}")]
    Missing(&'static str),
}

impl SoapError {
    /// Wrong user name or password (or a clock too far off for the digest).
    pub fn is_not_authorized(&self) -> bool {
        matches!(self, SoapError::Fault { subcode: Some(s), .. } if s.ends_with("NotAuthorized"))
    }
}

/// Parses a response envelope; returns the first element inside `Body`, or
/// the fault the camera sent.
pub fn response_body(xml: &str) -> Result<Element, SoapError> {
    let root = xml::parse(xml)?;
    if root.name != "Envelope" {
        return Err(SoapError::NotSoap);
    }
    let body = root.child("Body").ok_or(SoapError::NotSoap)?;
    let first = body
        .children
        .first()
        .ok_or(SoapError::Missing("a Body element"))?;
    if first.name == "Fault" {
        // SOAP 1.2: Code/Value, Code/Subcode/Value, Reason/Text.
        let local = |s: &str| s.rsplit(':').next().unwrap_or(s).to_owned();
        return Err(SoapError::Fault {
            code: first.text_at("Code/Value").map(local).unwrap_or_default(),
            subcode: first.text_at("Code/Subcode/Value").map(local),
            reason: first
                .text_at("Reason/Text")
                .or_else(|| first.text_at("faultstring"))
                .unwrap_or("")
                .to_owned(),
        });
    }
    Ok(first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected value computed independently with Python's hashlib:
    /// base64(sha1(b"0123456789abcdef" + b"2026-11-27T10:00:00Z" + b"secret")).
    #[test]
    fn password_digest_matches_an_independent_computation() {
        assert_eq!(
            password_digest(b"0123456789abcdef", "2026-11-27T10:00:00Z", "secret"),
            "qfpS68BQg8bSUF6b8A/lhDhDY+Q="
        );
    }

    #[test]
    fn requests_carry_the_token_and_escape_names() {
        let c = Credentials {
            username: "ad<min",
            password: "secret",
            nonce: b"0123456789abcdef",
            created: "2026-11-27T10:00:00Z",
        };
        let e = envelope("<tds:GetDeviceInformation/>", Some(&c));
        let parsed = xml::parse(&e).unwrap();
        let tok = parsed.find("UsernameToken").unwrap();
        assert_eq!(tok.text_at("Username"), Some("ad<min"));
        assert_eq!(
            tok.text_at("Password"),
            Some("qfpS68BQg8bSUF6b8A/lhDhDY+Q=")
        );
        assert_eq!(tok.text_at("Nonce"), Some("MDEyMzQ1Njc4OWFiY2RlZg=="));
        assert!(!e.contains("secret"), "the password never travels");
        assert!(parsed.path("Body/GetDeviceInformation").is_some());
    }

    #[test]
    fn faults_are_errors_with_their_subcode() {
        let f = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        let e = response_body(f).unwrap_err();
        assert!(e.is_not_authorized(), "{e}");
        assert_eq!(
            e.to_string(),
            "camera refused: Sender/NotAuthorized (Sender not Authorized)"
        );
        assert_eq!(response_body("<html/>"), Err(SoapError::NotSoap));
    }
}
