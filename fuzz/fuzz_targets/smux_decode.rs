//! cargo fuzz target: see `ec2ssh::fuzz::smux_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2ssh::fuzz::smux_decode(data));
