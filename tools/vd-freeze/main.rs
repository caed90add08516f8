fn main() -> std::process::ExitCode {
    vd::tools::freeze::main()
}
