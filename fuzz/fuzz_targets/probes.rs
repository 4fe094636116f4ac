#![no_main]
//! Fuzz target `probes`: see `echoloc::fuzzing::probes`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::probes(data));
