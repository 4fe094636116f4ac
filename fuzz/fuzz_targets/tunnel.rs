#![no_main]
//! Fuzz target `tunnel`: see `echoloc::fuzzing::tunnel`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::tunnel(data));
