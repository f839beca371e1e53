#![no_main]
// Requests from browsers and scripts: paths, queries, Range headers and JSON
// bodies through the real router and handlers (with an admin token, so the
// input reaches the parsers behind authentication).
use std::sync::OnceLock;

static HARNESS: OnceLock<candor_web::fuzzing::Harness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(candor_web::fuzzing::Harness::new);
    let _ = h.request(data);
});
