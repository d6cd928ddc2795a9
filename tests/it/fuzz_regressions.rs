//! The fuzz targets' entry points (`ec2ssh::fuzz`) replayed on the committed seeds and
//! on every input a fuzz run found crashing (`fuzz/seeds/TARGET`, `fuzz/regressions/TARGET`):
//! the fuzzing itself (`scripts/fuzz.sh`) is not part of the suite, its findings are.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::common::repo;

#[test]
fn seeds_and_found_crashes_run_clean() {
    let mut failed = Vec::new();
    for (name, target) in ec2ssh::fuzz::TARGETS {
        let mut replayed = 0;
        for dir in ["fuzz/seeds", "fuzz/regressions"] {
            let Ok(entries) = std::fs::read_dir(repo().join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                    failed.push(path.display().to_string());
                }
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no seeds for {name}");
    }
    assert!(failed.is_empty(), "these inputs panic: {failed:?}");
}

/// Inputs that are not in the seeds but exercise each target's edges.
#[test]
fn edge_inputs_run_clean() {
    for (name, target) in ec2ssh::fuzz::TARGETS {
        for data in [
            &b""[..],
            &[0u8; 1],
            &[0xff; 200],
            &[0u8; 4096],
            b"\x00\x00\x00\x74",
        ] {
            let ok = catch_unwind(AssertUnwindSafe(|| target(data))).is_ok();
            assert!(ok, "{name} panics on {data:?}");
        }
    }
}
