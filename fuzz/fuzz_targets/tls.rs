#![no_main]
//! Fuzz target `tls`: see `echoloc::fuzzing::tls`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::tls(data));
