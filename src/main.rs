//! The `focusqa` binary: parses the command line and maps outcomes to exit codes, once.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = focusqa::cli::main();
    ExitCode::from(code.code())
}
