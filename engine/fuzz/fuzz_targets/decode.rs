//! Arbitrary (link type, frame) through `decode_segment` (see src/decode.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tcptrace_engine_fuzz::decode::run(data);
});
