//! The C allocator's settings, for a small resident set (glibc only; elsewhere these
//! do nothing).
//!
//! Measured with a picker holding 9,810 rows after a refresh: glibc keeps what a
//! listing freed (the SDK's pages, the fleet a refresh replaced) mapped, in one arena
//! per thread that ever allocated, and raises its mmap threshold to the biggest block
//! freed so later response bodies land in the heap and fragment it. Capping the arenas,
//! fixing the threshold and trimming after a refresh took the picker from 70 MB to
//! about 40 MB resident.

/// Call first in `main`, before any thread starts: two arenas for the whole process
/// (with one, the picker's first frame and aws-config loading beside it serialise on
/// its lock: 2,600 futex calls and a first frame twice as slow) and a fixed mmap threshold (blocks of 128 KiB and up go back to the system when
/// freed).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::tune();
}

/// Hands memory that is free but still mapped back to the system: after a big
/// structure was replaced (a refreshed fleet) in a long-running process.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    // <malloc.h>
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    pub fn tune() {
        // SAFETY: mallopt takes glibc's own lock and only changes parameters; a
        // refused value leaves glibc's default.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes glibc's own locks; it frees no live block.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Trimming returns only free memory: live blocks, big and small, keep their bytes.
    #[test]
    fn trimming_keeps_live_memory_intact() {
        super::tune();
        let live: Vec<Vec<u64>> = (0..64).map(|k| vec![k; 1 << (k % 16)]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|k| vec![k as u8; 1 << 16]).collect();
        drop(freed);
        super::release_free();
        for (k, v) in live.iter().enumerate() {
            assert!(v.len() == 1 << (k % 16) && v.iter().all(|&x| x == k as u64));
        }
    }
}
