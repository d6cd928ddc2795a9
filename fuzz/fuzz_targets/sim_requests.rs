//! cargo fuzz target: see `ec2ssh::fuzz::sim_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2ssh::fuzz::sim_requests(data));
