fn main() -> std::process::ExitCode {
    failsh::main()
}
