//! `lrs export datatheek`: the KB Datatheek workbook of a month (or of a
//! range of months in one workbook) as a file, from a stopped data
//! directory. One month's workbook is the one `GET /api/figures/datatheek`
//! answers for the same month, scope, version and hits (the same
//! `lrs_app::datatheek` code; a closed month's is the same bytes); a range
//! is `lrs_app::datatheek::workbook_range`.

use anyhow::{bail, Context};
use lrs_app::datatheek;
use lrs_app::insight::{FigureAccess, FiguresVersion, HitsChoice, Month};
use lrs_app::sheets::SheetFormat;
use lrs_core::events::TenantKindV1;
use lrs_store::Store;
use std::path::Path;

/// Whose workbook: the KB's (every library and app), or one tenant's.
pub fn access_of(store: &Store, tenant: Option<&str>) -> anyhow::Result<FigureAccess> {
    let Some(tenant) = tenant else {
        return Ok(FigureAccess::Kb);
    };
    let record = store
        .tenant(tenant)?
        .with_context(|| format!("--tenant {tenant}: no such tenant (see lrs tenants list)"))?;
    Ok(match record.kind {
        TenantKindV1::Kb => FigureAccess::Kb,
        TenantKindV1::Library { isil } => FigureAccess::Library(isil),
        TenantKindV1::App { appid } => FigureAccess::App(appid),
    })
}

/// The format an output file's extension names: ods for `.ods`, else xlsx.
pub fn format_of(out: &Path) -> SheetFormat {
    match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("ods") => SheetFormat::Ods,
        _ => SheetFormat::Xlsx,
    }
}

/// The workbook of `from` through `to` (one month when equal). Refuses a
/// range in which no month has any figure and none is closed: there is
/// nothing to deliver, and a file of zeros would look like a delivery.
pub fn build(
    store: &Store,
    access: &FigureAccess,
    from: Month,
    to: Month,
    version: FiguresVersion,
    hits: HitsChoice,
    format: SheetFormat,
) -> anyhow::Result<Vec<u8>> {
    if from > to {
        bail!("--to-month {to} is before --month {from}");
    }
    let mut months = Vec::new();
    let mut month = from;
    while month <= to {
        if months.len() == lrs_app::insight::MAX_TREND_MONTHS {
            bail!(
                "a workbook covers at most {} months",
                lrs_app::insight::MAX_TREND_MONTHS
            );
        }
        let data = datatheek::gather(store, access, month, version, hits)
            .map_err(|e| anyhow::anyhow!("{month}: {e}"))?;
        months.push(data);
        month = month.next();
    }
    let empty = |d: &datatheek::Datatheek| {
        d.total.closing.is_none() && d.total.figures == Default::default()
    };
    if months.iter().all(empty) {
        if from == to {
            bail!("{from} has no figures (no statement counts in it): nothing to deliver, no file written");
        }
        bail!("{from} to {to} have no figures (no statement counts in them): nothing to deliver, no file written");
    }
    let bytes = match months.as_slice() {
        [one] => datatheek::workbook(one, format),
        all => datatheek::workbook_range(all, format),
    };
    bytes.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes `bytes` to a new file `out` (never over an existing one).
pub fn write_new(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("--out {}: give a new file", out.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
