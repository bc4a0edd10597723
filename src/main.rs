//! The `focusqa` binary: parses the command line and maps outcomes to exit codes, once.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own API (in the static library the `mimalloc` crate links), for the one option set
// below. `mi_option_purge_delay` is 15 in the v3 header the crate builds (and in v2).
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> ExitCode {
    // No transparent huge pages for this process. mimalloc asks for them on its arenas, and the
    // kernel then zeroes a whole 2 MiB page on the first touch of any byte of it: with a run's
    // scattered small allocations that was 38 % of the CPU of a 2,000-step spec (perf), and
    // the untouched rest of each page counted as resident memory.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process; it reads no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Memory mimalloc frees goes back to the system at once, not after its default delay of a
    // second. Loading a long spec turns its document tree into typed steps, freeing the tree as
    // it goes: with the delay, both stayed resident, and a 20,000-step `validate` peaked at
    // 92-105 MiB instead of 67-72 (4.3 instead of 2.5 KiB per step; `cargo bench --bench
    // validate`, docs/src/benchmarks.md).
    // SAFETY: mi_option_set only stores an option's value; mimalloc is this binary's allocator.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    let code = focusqa::cli::main();
    ExitCode::from(code.code())
}
