//! WS-Discovery (the ONVIF profile): the Probe Candor multicasts to
//! 239.255.255.250:3702, and the ProbeMatches cameras answer with.

use crate::soap::{SoapError, escape, response_body};

pub const MULTICAST: &str = "239.255.255.250:3702";

/// A Probe for ONVIF network video transmitters. `message_id` is a fresh
/// `urn:uuid:…` per probe; answers echo it in `RelatesTo`.
pub fn probe(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            r#"<s:Header><a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"#,
            r#"<a:MessageID>{}</a:MessageID><a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"#,
            r#"<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"#
        ),
        escape(message_id)
    )
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The device's stable identity (`urn:uuid:…`), to merge repeated answers.
    pub endpoint: String,
    /// Device service URLs (a camera may list one per interface).
    pub xaddrs: Vec<String>,
    /// From `onvif://www.onvif.org/name/…` and `/hardware/…` scopes.
    pub name: Option<String>,
    pub hardware: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The matches in one ProbeMatches datagram.
pub fn parse_probe_matches(xml: &str) -> Result<Vec<Found>, SoapError> {
    let b = response_body(xml)?;
    if b.name != "ProbeMatches" {
        return Err(SoapError::Missing("ProbeMatches"));
    }
    let mut out = Vec::new();
    for m in b.children_named("ProbeMatch") {
        let scopes: Vec<&str> = m
            .text_at("Scopes")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let scope = |kind: &str| {
            let prefix = format!("onvif://www.onvif.org/{kind}/");
            scopes
                .iter()
                .find_map(|s| s.strip_prefix(prefix.as_str()))
                .map(percent_decode)
        };
        out.push(Found {
            endpoint: m
                .text_at("EndpointReference/Address")
                .unwrap_or("")
                .to_owned(),
            xaddrs: m
                .text_at("XAddrs")
                .unwrap_or("")
                .split_whitespace()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .map(str::to_owned)
                .collect(),
            name: scope("name"),
            hardware: scope("hardware"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_well_formed_and_matches_parse() {
        let p = crate::xml::parse(&probe("urn:uuid:1234")).unwrap();
        assert_eq!(p.text_at("Header/MessageID"), Some("urn:uuid:1234"));
        assert_eq!(
            p.text_at("Body/Probe/Types"),
            Some("dn:NetworkVideoTransmitter")
        );
        let m = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><SOAP-ENV:Header><wsa:RelatesTo>urn:uuid:1234</wsa:RelatesTo></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:aaaa-bbbb</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Front%20Gate onvif://www.onvif.org/hardware/DS-2CD2143 onvif://www.onvif.org/location/</d:Scopes><d:XAddrs>http://192.168.1.64/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs><d:MetadataVersion>10</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let f = parse_probe_matches(m).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].endpoint, "urn:uuid:aaaa-bbbb");
        assert_eq!(f[0].xaddrs.len(), 2);
        assert_eq!(f[0].name.as_deref(), Some("Front Gate"));
        assert_eq!(f[0].hardware.as_deref(), Some("DS-2CD2143"));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
