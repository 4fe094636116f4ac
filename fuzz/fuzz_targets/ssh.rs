#![no_main]
//! Fuzz target `ssh`: see `echoloc::fuzzing::ssh`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::ssh(data));
