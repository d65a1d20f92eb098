fn main() -> std::process::ExitCode {
    failc::main()
}
