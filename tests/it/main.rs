//! Integration tests: the real `ec2ssh` binary against a real moto server, the
//! built-in simulator, and tmux. One test binary keeps link time down.

mod accounts;
mod common;
mod connect;
mod doctor;
mod errors;
mod forward;
mod fuzz_regressions;
mod http_proxy;
mod instance_connect;
mod list_moto;
mod list_sim;
mod picker;
mod proxy;
mod rig;
mod scp;
mod shell;
mod sim_auth;
mod sim_requests;
mod sshd;
mod status;
mod untrusted_text;
