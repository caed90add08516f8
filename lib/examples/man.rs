//! Write the tools' man pages into the folder given (default `man`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "man".to_string());
    std::fs::create_dir_all(&dir)?;
    for (name, text) in vd::man::pages()? {
        std::fs::write(std::path::Path::new(&dir).join(&name), text)?;
        println!("{dir}/{name}");
    }
    Ok(())
}
