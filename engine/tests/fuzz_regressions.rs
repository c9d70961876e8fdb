//! Inputs from fuzzing the engine (engine/fuzz, cargo-fuzz; issue 9 item 7: no panic
//! reaches a user), replayed under `cargo test` through the `capture` fuzz target's own
//! logic: fuzz/src/capture.rs is included below, so its checks run on every test run and
//! cannot rot while nobody fuzzes.
//!
//! tests/fuzz-regressions/ holds small corpus entries (each under 4 KB) that reached new
//! coverage, picked for variety: pcap and pcapng, damage skipped and resynchronised, a
//! file cut short mid-record, packet blocks naming an undefined interface, VLAN tags,
//! IPv6, dozens of connections with guessed roles, retransmissions and most close kinds
//! and Zeek conn_states, and a damaged pcapng section header (not a capture at all).
//!
//! A crash the fuzzers find goes here too: its minimised input under
//! tests/fuzz-regressions/, and a test naming it (`#[ignore]` until the fix lands).

#[path = "../fuzz/src/capture.rs"]
mod capture;

use std::fs;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

fn input(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What each stored input is known to exercise: whether it opens as a capture, at least
/// how many connections it holds, and whether the reader warns about damage.
const EXPECTED: [(&str, bool, u64, bool); 9] = [
    ("pcap-ipv6-many-tags.pcap", true, 3, true),
    ("pcap-resync-28-connections.pcap", true, 28, true),
    ("pcap-seven-conn-states.pcap", true, 9, true),
    ("pcap-vlan.pcap", true, 11, true),
    ("pcapng-damaged-section-header.bin", false, 0, false),
    ("pcapng-ipv6-fin-cut-short.pcapng", true, 2, true),
    ("pcapng-resync-11-connections.pcapng", true, 11, true),
    (
        "pcapng-retransmissions-undefined-interfaces.pcapng",
        true,
        2,
        true,
    ),
    ("pcapng-undefined-interface.pcapng", true, 2, true),
];

#[test]
fn every_stored_input_scans_without_panic() {
    let mut names: Vec<String> = fs::read_dir(dir())
        .expect("tests/fuzz-regressions exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect();
    names.sort();
    assert!(names.len() >= EXPECTED.len());
    for name in &names {
        let data = input(name);
        assert!(data.len() < 4096, "{name}: keep stored inputs small");
        let out = capture::run(&data);
        assert!(out.segments <= out.records, "{name}: {out:?}");
    }
}

#[test]
fn stored_inputs_reach_what_they_were_kept_for() {
    for (name, opened, connections, warned) in EXPECTED {
        let out = capture::run(&input(name));
        assert_eq!(out.opened, opened, "{name}: {out:?}");
        assert!(out.connections >= connections, "{name}: {out:?}");
        assert!(out.segments >= out.connections, "{name}: {out:?}");
        assert_eq!(out.warnings > 0, warned, "{name}: {out:?}");
    }
}

/// The reader must survive a capture cut short anywhere (a pipe closed, a file still
/// being written): prefixes of two stored inputs, one of each format, cut at every byte
/// of the headers and then every few bytes (strides prime to 4, so that every alignment
/// is hit). Not every byte: each scan allocates the reader's 1 MiB window, which a debug
/// build fills slowly.
#[test]
fn every_prefix_of_a_stored_input_scans_without_panic() {
    // A pcap file header is 24 bytes; the reader checks a pcapng's first 28.
    for (name, header, stride) in [
        ("pcapng-ipv6-fin-cut-short.pcapng", 28, 3),
        ("pcap-vlan.pcap", 24, 7),
    ] {
        let data = input(name);
        for cut in (0..64).chain((64..data.len()).step_by(stride)) {
            let out = capture::run(&data[..cut]);
            assert_eq!(out.opened, cut >= header, "{name} cut at {cut}: {out:?}");
        }
    }
}
