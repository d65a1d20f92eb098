fn main() -> std::process::ExitCode {
    faildebug::main()
}
