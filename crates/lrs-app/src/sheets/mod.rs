//! Spreadsheets for downloads: one model ([`Book`]), written as Office Open
//! XML (.xlsx) or OpenDocument (.ods, ODF, on the Dutch government's list
//! of open standards). Both files of one book hold the same sheets, cells
//! (text or number) and order; each is the same bytes every time it is
//! written from the same book.

mod model;
mod ods;
mod xlsx;

use crate::error::AppError;
pub use model::{Book, Cell, Sheet, Style, Value};
use std::str::FromStr;

/// The file format of a spreadsheet download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SheetFormat {
    /// Office Open XML (Excel).
    #[default]
    Xlsx,
    /// OpenDocument spreadsheet (LibreOffice, Excel, Google Sheets).
    Ods,
}

impl SheetFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            SheetFormat::Xlsx => xlsx::CONTENT_TYPE,
            SheetFormat::Ods => ods::CONTENT_TYPE,
        }
    }

    /// The file name's extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            SheetFormat::Xlsx => "xlsx",
            SheetFormat::Ods => "ods",
        }
    }
}

impl FromStr for SheetFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "xlsx" => Ok(SheetFormat::Xlsx),
            "ods" => Ok(SheetFormat::Ods),
            other => Err(format!(
                "'{other}' is not a spreadsheet format: xlsx or ods"
            )),
        }
    }
}

impl std::fmt::Display for SheetFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// The book as a file of `format`.
pub fn write(book: &Book, format: SheetFormat) -> Result<Vec<u8>, AppError> {
    match format {
        SheetFormat::Xlsx => xlsx::write(book)
            .map_err(|e| AppError::internal(format!("writing the xlsx workbook: {e}"))),
        SheetFormat::Ods => ods::write(book)
            .map_err(|e| AppError::internal(format!("writing the ods workbook: {e}"))),
    }
}
