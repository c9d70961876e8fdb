//! Arbitrary bytes as a capture file, through a whole `Scan` pass (see src/capture.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tcptrace_engine_fuzz::capture::run(data);
});
