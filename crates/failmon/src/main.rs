fn main() -> std::process::ExitCode {
    failmon::main()
}
