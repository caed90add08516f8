//! Man pages for the tools, rendered from their clap definitions so that a
//! page and `--help` never disagree. `make man` writes them into `man/`; a test
//! fails when a checked-in page is stale.

use crate::tools;
use std::io;

/// `(file name, roff text)` for every tool's section 1 page.
pub fn pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    tools::commands()
        .into_iter()
        .map(|cmd| {
            let name = format!("{}.1", cmd.get_name());
            let mut text = Vec::new();
            clap_mangen::Man::new(cmd)
                .source(format!("vd {}", env!("CARGO_PKG_VERSION")))
                .manual("vd manual")
                .render(&mut text)?;
            Ok((name, text))
        })
        .collect()
}
