fn main() -> std::process::ExitCode {
    faild::main()
}
