//! cargo fuzz target: see `ec2ssh::fuzz::frame_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2ssh::fuzz::frame_decode(data));
