//! Fuzzes the SIP parser: `parse` (UDP) and `frame_stream` (TCP) must never panic; every
//! accepted message must serialise to bytes that parse again, and serialising that must give
//! the same bytes (a fixed point); stateless error answers must build.
//!
//! Run: `cargo +nightly fuzz run sip_parse -- -max_total_time=60` (seeds: the RFC 4475
//! messages in `actors/tests/fixtures/rfc4475/`, e.g. `-- corpus actors/tests/fixtures/rfc4475`).
#![no_main]

use actors::sip::message::{frame_stream, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(msg) => {
            let wire = msg.to_bytes();
            let again = match parse(&wire) {
                Ok(m) => m,
                Err(e) => panic!("serialised message does not re-parse: {e}"),
            };
            assert_eq!(again.to_bytes(), wire, "serialisation is not a fixed point");
        }
        Err(e) => {
            if let Some(resp) = e.error_response() {
                let _ = resp.to_bytes();
            }
        }
    }

    // The same bytes as a TCP stream, consumed message by message.
    let mut buf = data;
    loop {
        let step = match frame_stream(buf) {
            Ok(Some((n, _))) => n,
            Ok(None) => break,
            Err(e) => match e.frame_len() {
                Some(n) => n,
                None => break,
            },
        };
        assert!(step > 0 && step <= buf.len(), "frame length out of range");
        buf = buf.get(step..).unwrap_or(&[]);
    }
});
