fn main() -> std::process::ExitCode {
    vd::tools::main::<vd::tools::rollout::VdRollout>()
}
