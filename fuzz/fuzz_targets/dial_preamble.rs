#![no_main]
// The cloud's port reads a data connection's preamble before anything
// else, from anyone who connects: whatever it accepts is exactly a
// preamble with a well-formed token.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let candor_link::dial::Peek::Dial(token) = candor_link::dial::peek(data) {
        assert!(candor_link::dial::is_token(&token));
        let p = candor_link::dial::preamble(&token);
        assert_eq!(&data[..p.len()], &p[..]);
    }
});
