#![no_main]
//! Fuzz target `pcap_file`: see `echoloc::fuzzing::pcap_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| echoloc::fuzzing::pcap_file(data));
