//! `lrs figures ...`: closing a month's figures and listing the closings
//! (docs/progress-and-figures.md, "Closing a month"). The server must be
//! stopped (the data directory is locked while it runs); while it runs, use
//! `POST /api/figures/closings`. What a closing is and does is
//! `lrs_app::closing`'s.

use crate::data::{open_store, DataArgs};
use lrs_app::closing::{self, Closed};
use lrs_app::insight::{FigureScope, Month};

#[derive(clap::Subcommand)]
pub enum FiguresCommand {
    /// Close a month's figures: record every scope's figures as they are now
    /// as the month's next version, which the Datatheek workbook and the API
    /// then serve. A month whose figures equal its latest closed version
    /// gets no new one.
    Close {
        #[command(flatten)]
        data: DataArgs,
        /// The month, YYYY-MM (Dutch time); it must have ended.
        #[arg(long)]
        month: Month,
        /// Why, for the record (at most 500 characters).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// A month's closings: each version, who closed it when, the statements
    /// that arrived after it and what they changed (in total).
    Closings {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        month: Month,
    },
}

pub async fn figures(command: FiguresCommand) -> anyhow::Result<()> {
    match command {
        FiguresCommand::Close { data, month, note } => {
            let store = open_store(&data)?;
            let by = format!("cli:{}", crate::audit::cli_user());
            let outcome =
                closing::close(&store, month, lrs_core::clock::now_micros(), &by, &note).await;
            store.close().await?;
            match outcome? {
                Closed::Closed { month, version } => {
                    crate::audit::record_cli(
                        &data.data_dir,
                        None,
                        "figures.close",
                        &format!("{month} version {version}"),
                    )?;
                    println!("ok: {month} closed, version {version}");
                }
                Closed::Unchanged { month, version } => {
                    println!("ok: {month} unchanged since version {version}: no new version")
                }
            }
        }
        FiguresCommand::Closings { data, month } => {
            let store = open_store(&data)?;
            let closings = closing::closings(&store, month, &FigureScope::Total);
            store.close().await?;
            let closings = closings?;
            if closings.is_empty() {
                println!("{month} is not closed");
            }
            for c in closings {
                let changes = if c.changes.is_empty() {
                    "no changes".to_owned()
                } else {
                    c.changes
                        .iter()
                        .map(|(figure, delta)| format!("{figure} {delta:+}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "{month} version {}: closed {} by {}{}; {} statements since; live: {changes}",
                    c.version,
                    c.closed_at,
                    c.closed_by,
                    if c.note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.note)
                    },
                    c.late_statements,
                );
            }
        }
    }
    Ok(())
}
