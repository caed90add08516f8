fn main() -> std::process::ExitCode {
    vd::tools::migrate::main()
}
