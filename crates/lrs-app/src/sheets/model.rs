//! What a spreadsheet holds, apart from its file format: sheets of cells
//! (text or number, with one of a few styles), column widths, frozen
//! header rows and an autofilter. `super::xlsx` and `super::ods` write the
//! same model, so both files of a download have the same sheets, cells and
//! order by construction.

use std::collections::BTreeMap;

/// How a cell looks; both writers know these four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Style {
    Plain,
    Bold,
    /// Bold, wrapped, aligned to the top: column headers.
    Header,
    /// Wrapped, aligned to the top: long texts.
    Wrap,
}

/// A cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<f64> for Value {
    fn from(number: f64) -> Self {
        Value::Number(number)
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub value: Value,
    pub style: Style,
}

/// One sheet: cells by (row, column), both from 0.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub name: String,
    pub cells: BTreeMap<(u32, u16), Cell>,
    /// Column widths in characters of the default font (Excel's unit).
    pub widths: BTreeMap<u16, f64>,
    /// Rows kept in view when scrolling (0: none).
    pub frozen_rows: u32,
    /// An autofilter over (first row, first column, last row, last column).
    pub autofilter: Option<(u32, u16, u32, u16)>,
}

impl Sheet {
    pub fn new(name: &str) -> Self {
        Sheet {
            name: name.to_owned(),
            cells: BTreeMap::new(),
            widths: BTreeMap::new(),
            frozen_rows: 0,
            autofilter: None,
        }
    }

    /// Writes a plain cell.
    pub fn write(&mut self, row: u32, col: u16, value: impl Into<Value>) {
        self.write_with(row, col, value, Style::Plain);
    }

    /// Writes a cell with a style.
    pub fn write_with(&mut self, row: u32, col: u16, value: impl Into<Value>, style: Style) {
        self.cells.insert(
            (row, col),
            Cell {
                value: value.into(),
                style,
            },
        );
    }

    pub fn set_column_width(&mut self, col: u16, width: f64) {
        self.widths.insert(col, width);
    }

    pub fn set_column_range_width(&mut self, first: u16, last: u16, width: f64) {
        for col in first..=last {
            self.widths.insert(col, width);
        }
    }

    /// Keeps the first `rows` rows in view.
    pub fn freeze_rows(&mut self, rows: u32) {
        self.frozen_rows = rows;
    }

    pub fn set_autofilter(&mut self, first_row: u32, first_col: u16, last_row: u32, last_col: u16) {
        self.autofilter = Some((first_row, first_col, last_row, last_col));
    }

    /// The last row and column that hold a cell, if any.
    pub fn extent(&self) -> Option<(u32, u16)> {
        let last_row = self.cells.keys().map(|(r, _)| *r).max()?;
        let last_col = self.cells.keys().map(|(_, c)| *c).max()?;
        Some((last_row, last_col))
    }
}

/// A workbook: its sheets in order, and when it was made (the file's own
/// creation time: a closed month's workbook is made at its closing).
#[derive(Debug, Clone)]
pub struct Book {
    pub sheets: Vec<Sheet>,
    /// Microseconds since the Unix epoch (UTC).
    pub created_micros: i64,
}

impl Book {
    pub fn new(created_micros: i64) -> Self {
        Book {
            sheets: Vec::new(),
            created_micros,
        }
    }

    /// Adds a sheet and hands it back to be filled.
    pub fn add_sheet(&mut self, name: &str) -> &mut Sheet {
        self.sheets.push(Sheet::new(name));
        self.sheets.last_mut().expect("just pushed")
    }
}
