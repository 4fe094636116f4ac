#![no_main]
//! Fuzz target `vnc`: see `echoloc::fuzzing::vnc`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::vnc(data));
