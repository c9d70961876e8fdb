//! The logic of the fuzz targets; `fuzz_targets/*.rs` are one-line wrappers around it.
//!
//! `capture.rs` uses nothing but the engine, so `engine/tests/fuzz_regressions.rs`
//! includes it (`#[path]`) and runs the same logic under `cargo test`.

pub mod capture;
pub mod decode;
pub mod segments;
