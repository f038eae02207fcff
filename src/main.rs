fn main() -> std::process::ExitCode {
    tillpay::cli::main()
}
