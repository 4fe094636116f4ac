#![no_main]
//! Fuzz target `engine`: see `echoloc::fuzzing::engine`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::engine(data));
