#![no_main]
// Segment files after crashes, disk corruption or tampering.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for verify in [false, true] {
        let mut c = std::io::BufReader::new(std::io::Cursor::new(data));
        if let Ok(s) = candor_storage::segfile::scan_reader(&mut c, data.len() as u64, verify) {
            assert!(s.valid_len <= data.len() as u64);
        }
    }
});
