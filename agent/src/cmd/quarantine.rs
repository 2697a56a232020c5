//! `vigil quarantine`: list, show, restore and delete quarantined files through
//! the daemon.
//!
//! Owns the subcommands' arguments and their output (a table, or JSON). Must not
//! own: the store (the daemon's quarantine thread) or who may do what (the
//! control socket decides).

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::cmd::ctl::{send, socket_path, unexpected};
use crate::protocol::{Reply, Request};

/// `vigil quarantine` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// List the items, oldest first.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one item's record (JSON).
    Show {
        /// The item id (from `list`).
        id: String,
    },
    /// Put an item back with its original owner, mode and times, then drop it from
    /// the store.
    ///
    /// The file is never written over an existing one unless --overwrite. A file
    /// whose SHA-256 is still on a known-bad list needs --force (and will be denied,
    /// and quarantined again, on its next use unless an exclusion covers it).
    Restore {
        /// The item id.
        id: String,
        /// Restore to this path instead of the original one.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Restore even if the hash is still known-bad.
        #[arg(long)]
        force: bool,
        /// Replace an existing file at the target path.
        #[arg(long)]
        overwrite: bool,
        /// Allow the item's SHA-256 first (as `vigil allow`, with the item in the
        /// comment), so the restored file runs; taken back if the restore fails.
        #[arg(long, conflicts_with = "force")]
        allow: bool,
    },
    /// Delete an item for good.
    Delete {
        /// The item id.
        id: String,
    },
}

/// Runs one `vigil quarantine` subcommand against the daemon (its socket from
/// `socket` or the configuration).
///
/// # Errors
/// When the daemon cannot be reached, or the working directory is gone.
pub fn run(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    action: QuarantineCmd,
) -> anyhow::Result<u8> {
    let socket = &socket_path(config.clone(), socket)?;
    match action {
        QuarantineCmd::List { json } => send(socket, Request::QuarantineList, |reply| {
            let Reply::Items { items } = reply else {
                return unexpected("quarantine-list", &reply);
            };
            if json {
                println!("{}", pretty(&items));
                return Ok(());
            }
            println!(
                "{:<16}  {:<20}  {:>10}  {:<10}  PATH",
                "ID", "WHEN", "SIZE", "VERDICT"
            );
            for item in &items {
                println!(
                    "{:<16}  {:<20}  {:>10}  {:<10}  {}",
                    item.id,
                    item.quarantined_at,
                    item.size,
                    item.verdict,
                    item.path.escape_debug()
                );
            }
            Ok(())
        }),
        QuarantineCmd::Show { id } => send(socket, Request::QuarantineShow { id }, |reply| {
            let Reply::Item { item } = reply else {
                return unexpected("quarantine-show", &reply);
            };
            println!("{}", pretty(&item));
            Ok(())
        }),
        QuarantineCmd::Restore {
            id,
            to,
            force,
            overwrite,
            allow,
        } => {
            let to_hex = match to {
                Some(p) => Some(hex::encode(absolute(p)?.as_os_str().as_bytes())),
                None => None,
            };
            let request = Request::QuarantineRestore {
                id,
                to_hex,
                force,
                overwrite,
            };
            if allow {
                return crate::cmd::allow::restore_allowed(config.as_deref(), socket, request);
            }
            send(socket, request, |reply| {
                let Reply::Restored { restored, .. } = reply else {
                    return unexpected("quarantine-restore", &reply);
                };
                println!("restored: {restored}");
                Ok(())
            })
        }
        QuarantineCmd::Delete { id } => send(socket, Request::QuarantineDelete { id }, |reply| {
            let Reply::Deleted { deleted } = reply else {
                return unexpected("quarantine-delete", &reply);
            };
            println!("deleted: {deleted}");
            Ok(())
        }),
    }
}

/// Indented JSON for people.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `p` against the working directory (the daemon has another one).
fn absolute(p: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p
    } else {
        std::env::current_dir()
            .context("resolving --to against the working directory")?
            .join(p)
    })
}
