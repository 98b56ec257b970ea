//! The `insights` binary. All logic lives in the library (`insights::cli`).

fn main() -> std::process::ExitCode {
    insights::cli::main()
}
