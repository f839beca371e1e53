//! ONVIF for the recorder: the SOAP requests Candor sends (with WS-Security
//! UsernameToken digests), and parsers for what cameras answer, including
//! WS-Discovery. Pure: no sockets, no clock; callers pass the time and the
//! nonce, so every byte is testable and the parsers are fuzzable.

pub mod device;
pub mod discovery;
pub mod events;
pub mod soap;
pub mod xml;

/// The fuzz entry point: every parser of camera answers on the same input.
pub fn fuzz_parsers(xml: &str) {
    let _ = device::parse_system_date_and_time(xml);
    let _ = device::parse_device_information(xml);
    let _ = device::parse_capabilities(xml);
    if let Ok(p) = device::parse_profiles(xml) {
        let _ = device::main_and_sub(&p);
    }
    let _ = device::parse_stream_uri(xml);
    let _ = discovery::parse_probe_matches(xml);
    let _ = events::parse_subscription(xml);
    if let Ok(ns) = events::parse_pull_messages(xml) {
        ns.iter().for_each(|n| {
            let _ = events::classify(n);
        });
    }
}
