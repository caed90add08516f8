fn main() -> std::process::ExitCode {
    vd::tools::reload::main()
}
