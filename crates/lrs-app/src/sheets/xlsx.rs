//! A [`Book`] as an Office Open XML workbook (.xlsx), with rust_xlsxwriter.

use super::model::{Book, Style, Value};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook, XlsxError};

pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The workbook as bytes; the same book gives the same bytes.
pub fn write(book: &Book) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let made = ExcelDateTime::from_timestamp(book.created_micros.div_euclid(1_000_000))?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&made));
    let bold = Format::new().set_bold();
    let header = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Top);
    let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
    for sheet in &book.sheets {
        let out = workbook.add_worksheet().set_name(&sheet.name)?;
        for (&(row, col), cell) in &sheet.cells {
            let format = match cell.style {
                Style::Plain => None,
                Style::Bold => Some(&bold),
                Style::Header => Some(&header),
                Style::Wrap => Some(&wrap),
            };
            match (&cell.value, format) {
                (Value::Text(text), None) => out.write(row, col, text.as_str())?,
                (Value::Text(text), Some(f)) => {
                    out.write_with_format(row, col, text.as_str(), f)?
                }
                (Value::Number(n), None) => out.write(row, col, *n)?,
                (Value::Number(n), Some(f)) => out.write_with_format(row, col, *n, f)?,
            };
        }
        for (&col, &width) in &sheet.widths {
            out.set_column_width(col, width)?;
        }
        if sheet.frozen_rows > 0 {
            out.set_freeze_panes(sheet.frozen_rows, 0)?;
        }
        if let Some((r0, c0, r1, c1)) = sheet.autofilter {
            out.autofilter(r0, c0, r1, c1)?;
        }
    }
    workbook.save_to_buffer()
}
