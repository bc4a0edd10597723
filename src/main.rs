//! The `focusqa` binary: parses the command line and maps outcomes to exit codes, once.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let code = focusqa::cli::main();
    ExitCode::from(code.code())
}
