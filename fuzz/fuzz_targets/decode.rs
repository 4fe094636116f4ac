#![no_main]
//! Fuzz target `decode`: see `echoloc::fuzzing::decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::decode(data));
