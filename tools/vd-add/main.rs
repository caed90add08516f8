fn main() -> std::process::ExitCode {
    vd::tools::add::main()
}
