//! The `focusqa` binary: parses the command line and maps outcomes to exit codes, once.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let code = focusqa::cli::main();
    ExitCode::from(code.code())
}
