fn main() -> std::process::ExitCode {
    vd::tools::diff::main()
}
