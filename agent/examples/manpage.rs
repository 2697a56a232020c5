//! Writes vigil's man pages, generated from the same clap definition as
//! `vigil --help`, into a directory: `vigil.8` and one `vigil-<command>.8` per
//! subcommand. packaging/build.sh runs it, so the pages never drift from the CLI.
//!
//!     cargo run --release --example manpage -- OUT_DIR [DATE]
//!
//! DATE (e.g. 2026-11-28) goes into each page's header; packaging/build.sh
//! passes the last commit's date, so the pages are reproducible.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;

const SECTION: &str = "8";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .context("usage: manpage OUT_DIR [DATE]")?;
    // Without a date clap_mangen leaves the .TH field out and the source and
    // manual shift into the wrong columns.
    let date = args.next().map_or_else(
        || "unknown".to_string(),
        |d| d.to_string_lossy().into_owned(),
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = vigil::cli::Cli::command();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let page = |cmd: clap::Command, file: String| -> anyhow::Result<()> {
        let mut roff = Vec::new();
        clap_mangen::Man::new(cmd)
            .section(SECTION)
            .date(&date)
            .source(format!("vigil {version}"))
            .manual("vigil manual")
            .render(&mut roff)
            .with_context(|| format!("rendering {file}"))?;
        let path = out.join(&file);
        std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vigil-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(&name)
            .bin_name(format!("vigil {}", sub.get_name()));
        page(sub, format!("{name}.{SECTION}"))?;
    }
    page(cmd, format!("vigil.{SECTION}"))
}
