#![no_main]
//! Fuzz target `rdp`: see `echoloc::fuzzing::rdp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::rdp(data));
