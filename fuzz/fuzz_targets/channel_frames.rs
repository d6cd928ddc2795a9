//! cargo fuzz target: see `ec2ssh::fuzz::channel_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2ssh::fuzz::channel_frames(data));
