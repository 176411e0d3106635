//! A [`Book`] as an OpenDocument spreadsheet (.ods, ODF 1.3, ISO/IEC 26300),
//! written here rather than with a crate (docs/dependencies.md says why):
//! a ZIP package (with the `zip` crate rust_xlsxwriter already brings) of
//! `mimetype` (first, stored), `META-INF/manifest.xml`, `meta.xml`,
//! `styles.xml`, `settings.xml` (frozen header rows) and `content.xml`
//! (the tables, cell styles, column widths and autofilters).
//!
//! Nothing in it depends on when or how often it is written: styles and
//! cells in a fixed order, every entry's time the ZIP epoch (as in the
//! xlsx), the creation time the book's. The same book gives the same bytes.

use super::model::{Book, Sheet, Style, Value};
use std::fmt::Write as _;
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

pub const CONTENT_TYPE: &str = "application/vnd.oasis.opendocument.spreadsheet";

const NS: &str = concat!(
    r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" "#,
    r#"xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" "#,
    r#"xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" "#,
    r#"xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" "#,
    r#"xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" "#,
    r#"xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" "#,
    r#"xmlns:config="urn:oasis:names:tc:opendocument:xmlns:config:1.0" "#,
    r#"xmlns:dc="http://purl.org/dc/elements/1.1/" "#,
    r#"office:version="1.3""#
);

const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// The package as bytes.
pub fn write(book: &Book) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default());
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    // ODF 1.3 part 2, 3.3: the first entry, uncompressed, no extra field.
    zip.start_file("mimetype", stored)?;
    zip.write_all(CONTENT_TYPE.as_bytes())?;
    for (name, text) in [
        ("META-INF/manifest.xml", manifest()),
        ("meta.xml", meta(book)),
        ("styles.xml", styles()),
        ("settings.xml", settings(book)),
        ("content.xml", content(book)),
    ] {
        zip.start_file(name, deflated)?;
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

fn manifest() -> String {
    let mut out = String::from(XML_HEAD);
    out.push_str(
        "<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.3\">\n",
    );
    let _ = writeln!(
        out,
        " <manifest:file-entry manifest:full-path=\"/\" manifest:version=\"1.3\" manifest:media-type=\"{CONTENT_TYPE}\"/>"
    );
    for part in ["content.xml", "styles.xml", "meta.xml", "settings.xml"] {
        let _ = writeln!(
            out,
            " <manifest:file-entry manifest:full-path=\"{part}\" manifest:media-type=\"text/xml\"/>"
        );
    }
    out.push_str("</manifest:manifest>\n");
    out
}

fn meta(book: &Book) -> String {
    let created = chrono::DateTime::from_timestamp_micros(book.created_micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ");
    format!(
        "{XML_HEAD}<office:document-meta {NS}><office:meta><meta:generator>lrs {}</meta:generator><meta:creation-date>{created}</meta:creation-date></office:meta></office:document-meta>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn styles() -> String {
    format!(
        "{XML_HEAD}<office:document-styles {NS}><office:styles><style:default-style style:family=\"table-cell\"/></office:styles></office:document-styles>\n"
    )
}

/// View settings: each sheet's frozen header rows (LibreOffice's
/// `ooo:view-settings`, which Excel reads too).
fn settings(book: &Book) -> String {
    let mut out = format!(
        "{XML_HEAD}<office:document-settings {NS}><office:settings><config:config-item-set config:name=\"ooo:view-settings\"><config:config-item-map-indexed config:name=\"Views\"><config:config-item-map-entry><config:config-item config:name=\"ViewId\" config:type=\"string\">view1</config:config-item><config:config-item-map-named config:name=\"Tables\">"
    );
    for sheet in &book.sheets {
        let _ = write!(
            out,
            "<config:config-item-map-entry config:name=\"{}\">",
            escape(&sheet.name)
        );
        let frozen = sheet.frozen_rows;
        let (mode, range) = if frozen > 0 { (2, 2) } else { (0, 0) };
        for (name, kind, value) in [
            ("HorizontalSplitMode", "short", 0),
            ("VerticalSplitMode", "short", mode),
            ("HorizontalSplitPosition", "int", 0),
            ("VerticalSplitPosition", "int", frozen),
            ("ActiveSplitRange", "short", range),
            ("PositionLeft", "int", 0),
            ("PositionRight", "int", 0),
            ("PositionTop", "int", 0),
            ("PositionBottom", "int", frozen),
        ] {
            let _ = write!(
                out,
                "<config:config-item config:name=\"{name}\" config:type=\"{kind}\">{value}</config:config-item>"
            );
        }
        out.push_str("</config:config-item-map-entry>");
    }
    out.push_str("</config:config-item-map-named>");
    if let Some(first) = book.sheets.first() {
        let _ = write!(
            out,
            "<config:config-item config:name=\"ActiveTable\" config:type=\"string\">{}</config:config-item>",
            escape(&first.name)
        );
    }
    out.push_str("</config:config-item-map-entry></config:config-item-map-indexed></config:config-item-set></office:settings></office:document-settings>\n");
    out
}

/// The automatic style of a cell style, if it has one.
fn cell_style_name(style: Style) -> Option<&'static str> {
    match style {
        Style::Plain => None,
        Style::Bold => Some("ceBold"),
        Style::Header => Some("ceHeader"),
        Style::Wrap => Some("ceWrap"),
    }
}

/// Excel's column width (characters of the default font) in centimetres:
/// 7 pixels a character plus 5 of padding, at 96 pixels an inch.
fn width_cm(width: f64) -> f64 {
    (width * 7.0 + 5.0) / 96.0 * 2.54
}

/// Every distinct column width of the book, in order, with its style name.
fn column_styles(book: &Book) -> Vec<(String, String)> {
    let mut widths: Vec<String> = book
        .sheets
        .iter()
        .flat_map(|s| s.widths.values())
        .map(|w| format!("{:.3}cm", width_cm(*w)))
        .collect();
    widths.sort();
    widths.dedup();
    widths
        .into_iter()
        .enumerate()
        .map(|(i, w)| (w, format!("co{}", i + 1)))
        .collect()
}

fn content(book: &Book) -> String {
    let columns = column_styles(book);
    let mut out = format!("{XML_HEAD}<office:document-content {NS}><office:automatic-styles>");
    for (width, name) in &columns {
        let _ = write!(
            out,
            "<style:style style:name=\"{name}\" style:family=\"table-column\"><style:table-column-properties style:column-width=\"{width}\"/></style:style>"
        );
    }
    let bold = "<style:text-properties fo:font-weight=\"bold\" style:font-weight-asian=\"bold\" style:font-weight-complex=\"bold\"/>";
    let wrap =
        "<style:table-cell-properties fo:wrap-option=\"wrap\" style:vertical-align=\"top\"/>";
    let _ = write!(
        out,
        "<style:style style:name=\"ceBold\" style:family=\"table-cell\">{bold}</style:style>\
         <style:style style:name=\"ceHeader\" style:family=\"table-cell\">{wrap}{bold}</style:style>\
         <style:style style:name=\"ceWrap\" style:family=\"table-cell\">{wrap}</style:style>"
    );
    out.push_str("</office:automatic-styles><office:body><office:spreadsheet>");
    for sheet in &book.sheets {
        table(&mut out, sheet, &columns);
    }
    let filtered: Vec<(usize, &Sheet)> = book
        .sheets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.autofilter.is_some())
        .collect();
    if !filtered.is_empty() {
        out.push_str("<table:database-ranges>");
        for (index, sheet) in filtered {
            let (r0, c0, r1, c1) = sheet.autofilter.expect("filtered");
            let quoted = format!("'{}'", sheet.name.replace('\'', "''"));
            let _ = write!(
                out,
                "<table:database-range table:name=\"__Anonymous_Sheet_DB__{index}\" table:target-range-address=\"{}\" table:display-filter-buttons=\"true\"/>",
                escape(&format!(
                    "{quoted}.{}{}:{quoted}.{}{}",
                    column_letters(c0),
                    r0 + 1,
                    column_letters(c1),
                    r1 + 1
                ))
            );
        }
        out.push_str("</table:database-ranges>");
    }
    out.push_str("</office:spreadsheet></office:body></office:document-content>\n");
    out
}

fn table(out: &mut String, sheet: &Sheet, columns: &[(String, String)]) {
    let _ = write!(out, "<table:table table:name=\"{}\">", escape(&sheet.name));
    let last_col = sheet
        .extent()
        .map(|(_, c)| c)
        .into_iter()
        .chain(sheet.widths.keys().copied())
        .max()
        .unwrap_or(0);
    // Columns: a styled one for each width, runs of plain ones between.
    let mut plain_run = 0u32;
    let flush = |out: &mut String, run: &mut u32| {
        if *run > 0 {
            let repeated = if *run > 1 {
                format!(" table:number-columns-repeated=\"{run}\"")
            } else {
                String::new()
            };
            let _ = write!(out, "<table:table-column{repeated}/>");
            *run = 0;
        }
    };
    for col in 0..=last_col {
        match sheet.widths.get(&col) {
            Some(width) => {
                flush(out, &mut plain_run);
                let width = format!("{:.3}cm", width_cm(*width));
                let name = columns
                    .iter()
                    .find(|(w, _)| *w == width)
                    .map(|(_, n)| n.as_str())
                    .unwrap_or_default();
                let _ = write!(out, "<table:table-column table:style-name=\"{name}\"/>");
            }
            None => plain_run += 1,
        }
    }
    flush(out, &mut plain_run);
    if sheet.frozen_rows > 0 {
        // The frozen rows print on every page, too.
        out.push_str("<table:table-header-rows>");
        rows(out, sheet, 0, sheet.frozen_rows);
        out.push_str("</table:table-header-rows>");
    }
    let end = sheet.extent().map(|(r, _)| r + 1).unwrap_or(0);
    if end > sheet.frozen_rows {
        rows(out, sheet, sheet.frozen_rows, end);
    }
    if sheet.extent().is_none() && sheet.frozen_rows == 0 {
        // A table has at least one row.
        out.push_str("<table:table-row><table:table-cell/></table:table-row>");
    }
    out.push_str("</table:table>");
}

/// Rows `from` to `to` (exclusive); empty ones as runs.
fn rows(out: &mut String, sheet: &Sheet, from: u32, to: u32) {
    let mut empty_run = 0u32;
    let flush = |out: &mut String, run: &mut u32| {
        if *run > 0 {
            let repeated = if *run > 1 {
                format!(" table:number-rows-repeated=\"{run}\"")
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "<table:table-row{repeated}><table:table-cell/></table:table-row>"
            );
            *run = 0;
        }
    };
    for row in from..to {
        let mut cells = sheet.cells.range((row, 0)..=(row, u16::MAX)).peekable();
        if cells.peek().is_none() {
            empty_run += 1;
            continue;
        }
        flush(out, &mut empty_run);
        out.push_str("<table:table-row>");
        let mut next_col = 0u16;
        for (&(_, col), cell) in cells {
            if col > next_col {
                let gap = col - next_col;
                if gap > 1 {
                    let _ = write!(
                        out,
                        "<table:table-cell table:number-columns-repeated=\"{gap}\"/>"
                    );
                } else {
                    out.push_str("<table:table-cell/>");
                }
            }
            out.push_str("<table:table-cell");
            if let Some(name) = cell_style_name(cell.style) {
                let _ = write!(out, " table:style-name=\"{name}\"");
            }
            match &cell.value {
                Value::Number(n) => {
                    let _ = write!(
                        out,
                        " office:value-type=\"float\" office:value=\"{n}\"><text:p>{n}</text:p>"
                    );
                }
                // An empty text is an empty cell, as in the xlsx.
                Value::Text(text) if text.is_empty() => {
                    out.push('>');
                }
                Value::Text(text) => {
                    out.push_str(" office:value-type=\"string\"><text:p>");
                    paragraph_text(out, text);
                    out.push_str("</text:p>");
                }
            }
            out.push_str("</table:table-cell>");
            next_col = col + 1;
        }
        out.push_str("</table:table-row>");
    }
    flush(out, &mut empty_run);
}

/// Text in a `text:p`: XML-escaped, with the spaces, tabs and line breaks
/// ODF would otherwise collapse (ODF 1.3 part 3, 6.1.2-6.1.4) as elements,
/// and the characters XML 1.0 cannot hold left out.
fn paragraph_text(out: &mut String, text: &str) {
    let mut spaces = 0u32;
    let mut at_start = true;
    // One space between words stays a space; at the start or the end of
    // the paragraph, and beyond the first, spaces are `text:s` elements.
    let flush = |out: &mut String, spaces: &mut u32, literal_first: bool| {
        if *spaces == 0 {
            return;
        }
        let extra = if literal_first { *spaces - 1 } else { *spaces };
        if literal_first {
            out.push(' ');
        }
        match extra {
            0 => {}
            1 => out.push_str("<text:s/>"),
            n => {
                let _ = write!(out, "<text:s text:c=\"{n}\"/>");
            }
        }
        *spaces = 0;
    };
    for c in text.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        flush(out, &mut spaces, !at_start);
        at_start = false;
        match c {
            '\t' => out.push_str("<text:tab/>"),
            '\n' => out.push_str("<text:line-break/>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    flush(out, &mut spaces, false);
}

/// Text for an attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A, B, ..., Z, AA, ...
fn column_letters(col: u16) -> String {
    let mut n = u32::from(col) + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_count_like_a_spreadsheet() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    #[test]
    fn spaces_tabs_and_markup_survive_in_a_paragraph() {
        let mut out = String::new();
        paragraph_text(&mut out, "  a  b\tc <d> & e\u{1}");
        assert_eq!(
            out,
            "<text:s text:c=\"2\"/>a <text:s/>b<text:tab/>c &lt;d&gt; &amp; e"
        );
        let mut out = String::new();
        paragraph_text(&mut out, "x ");
        assert_eq!(out, "x<text:s/>");
    }

    #[test]
    fn the_same_book_gives_the_same_bytes() {
        let mut book = Book::new(1_700_000_000_000_000);
        let sheet = book.add_sheet("Blad 'één'");
        sheet.write_with(0, 0, "Kop", Style::Header);
        sheet.write(1, 0, "tekst");
        sheet.write(1, 3, 42.0);
        sheet.set_column_width(0, 18.0);
        sheet.freeze_rows(1);
        sheet.set_autofilter(0, 0, 1, 3);
        let first = write(&book).unwrap();
        assert_eq!(first, write(&book).unwrap());
        assert_eq!(&first[30..38], b"mimetype");
        assert_eq!(&first[38..38 + CONTENT_TYPE.len()], CONTENT_TYPE.as_bytes());
    }
}
