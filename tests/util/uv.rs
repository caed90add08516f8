//! uv, the installer that writes and installs PEP 751 locks, for the tests
//! that check vd's locks against it: its wheel is fetched from the package
//! index once (the cached `pip download` of python.rs), and its binary is
//! taken out of the wheel into the tests' cache. Every run of it here is
//! offline, with a cache of its own.

use super::cache_dir;
use super::python::{download, python3};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The uv binary, from the cached uv wheel; a test failure saying how to
/// get it when it cannot be had.
pub fn uv() -> &'static Path {
    static UV: OnceLock<PathBuf> = OnceLock::new();
    UV.get_or_init(|| {
        let binary = cache_dir().join("uv").join("uv");
        if binary.exists() {
            return binary;
        }
        let wheels = std::panic::catch_unwind(|| download("uv", &[])).unwrap_or_else(|_| {
            panic!(
                "the tests need uv: its wheel is fetched once with `pip download uv` from the \
                 package index, which failed (reach the index once, or put a uv binary at {})",
                binary.display()
            )
        });
        let wheel = wheels
            .iter()
            .find(|w| {
                w.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("uv-"))
            })
            .unwrap_or_else(|| panic!("pip download uv fetched no uv wheel: {wheels:?}"));
        extract_binary(wheel, &binary);
        binary
    })
}

/// Take `uv-*.data/scripts/uv` out of the wheel as `binary`, executable;
/// by a name of its own first, so a run cut short leaves no half a binary.
fn extract_binary(wheel: &Path, binary: &Path) {
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    let partial = binary.with_extension(format!("partial{}", std::process::id()));
    const SCRIPT: &str = "import sys, zipfile, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        name = next(n for n in z.namelist() if n.endswith('.data/scripts/uv'))\n\
        open(sys.argv[2], 'wb').write(z.read(name))\n\
        os.chmod(sys.argv[2], 0o755)\n";
    super::stdout_of(
        Command::new(python3())
            .args(["-c", SCRIPT])
            .arg(wheel)
            .arg(&partial),
        "taking uv out of its wheel",
    );
    std::fs::rename(&partial, binary).unwrap();
}

/// A run of uv, offline, with the tests' cache of its own and nothing of
/// the user's uv settings.
pub fn uv_command() -> Command {
    let mut command = Command::new(uv());
    command
        .env("UV_CACHE_DIR", cache_dir().join("uv-cache"))
        .env("UV_OFFLINE", "1")
        .env("UV_NO_CONFIG", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("UV_INDEX_URL")
        .env_remove("UV_FIND_LINKS");
    command
}
