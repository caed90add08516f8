fn main() -> std::process::ExitCode {
    vd::tools::push::main()
}
