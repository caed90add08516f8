fn main() -> std::process::ExitCode {
    vd::tools::targets::main()
}
