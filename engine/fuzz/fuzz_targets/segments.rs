//! Arbitrary bytes as a sequence of segments, through the `Scanner` and `analyse`
//! (see src/segments.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tcptrace_engine_fuzz::segments::run(data);
});
