//! Write the tools' shell completions into the folder given (default
//! `completions`): bash/, zsh/ and fish/.

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "completions".to_string());
    for (path, text) in vd::completions::scripts() {
        let path = std::path::Path::new(&dir).join(&path);
        std::fs::create_dir_all(path.parent().expect("a script is in a shell's folder"))?;
        std::fs::write(&path, text)?;
        println!("{}", path.display());
    }
    Ok(())
}
