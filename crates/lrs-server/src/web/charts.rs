//! Charts as inline SVG, drawn on the server: no script, no library. Each
//! chart is a `<figure>` with a caption, an SVG with `role="img"` and a
//! label that says what it shows in words, and the same numbers as a table
//! (in a `<details>` under it): nothing is told only by the picture or by
//! colour (WCAG 2.1, 1.1.1 and 1.4.1).

use crate::web::html::esc;
use lrs_app::lang::Lang;
use std::fmt::Write;

/// One bar: its label (text) and value.
pub struct Bar {
    pub label: String,
    pub value: u64,
}

/// Cuts a label to `max` characters, with an ellipsis.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// A horizontal bar chart (a top 10): each bar under its label, the value
/// at its end. `id` makes the caption's id unique in the page.
pub fn horizontal(
    lang: Lang,
    id: &str,
    caption: &str,
    bars: &[Bar],
    table_head: (&str, &str),
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart-figure\">\n<figcaption id=\"{id}-caption\">{caption}</figcaption>\n",
        id = esc(id),
        caption = esc(caption)
    );
    if bars.is_empty() {
        let _ = write!(
            out,
            "<p>{}</p>\n</figure>\n",
            lang.pick("Geen gegevens in deze maand.", "No data this month.")
        );
        return out;
    }
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let summary = {
        let first = &bars[0];
        format!(
            "{} {} {}; {}: {} ({})",
            lang.pick("Staafdiagram van", "Bar chart of"),
            bars.len(),
            lang.pick("cursussen", "courses"),
            lang.pick("hoogste", "highest"),
            first.label,
            lang.number(first.value)
        )
    };
    // Labels and values are HTML text (they wrap and scale like the page's
    // text); only the bars are SVG. The whole is one image to assistive
    // technology, described by its label; the table below has the numbers.
    let _ = writeln!(
        out,
        "<div class=\"hbars\" role=\"img\" aria-label=\"{summary}\">",
        summary = esc(&summary)
    );
    for (i, bar) in bars.iter().enumerate() {
        let width = (100.0 * bar.value as f64 / max as f64).max(0.5);
        let _ = writeln!(
            out,
            "<div class=\"hbar\"><span class=\"hbar-label\">{rank}. {label}</span>\
             <svg class=\"hbar-track\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" focusable=\"false\">\
             <rect class=\"bar\" x=\"0\" y=\"0\" width=\"{width:.1}\" height=\"10\"></rect></svg>\
             <span class=\"hbar-value\">{value}</span></div>",
            rank = i + 1,
            label = esc(&shorten(&bar.label, 60)),
            value = lang.number(bar.value)
        );
    }
    out.push_str("</div>\n");
    out.push_str(&table_details(
        lang,
        caption,
        &[lang.pick("Plaats", "Rank"), table_head.0, table_head.1],
        bars.iter()
            .enumerate()
            .map(|(i, b)| vec![(i + 1).to_string(), b.label.clone(), lang.number(b.value)])
            .collect(),
    ));
    out.push_str("</figure>\n");
    out
}

/// A vertical bar chart over months (a trend): one bar per month, the
/// month under it, the largest value on the axis.
pub fn columns(lang: Lang, id: &str, caption: &str, bars: &[Bar]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart-figure\">\n<figcaption id=\"{id}-caption\">{caption}</figcaption>\n",
        id = esc(id),
        caption = esc(caption)
    );
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0);
    const WIDTH: f64 = 360.0;
    const HEIGHT: f64 = 170.0;
    const TOP: f64 = 22.0;
    const BOTTOM: f64 = 24.0;
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = WIDTH / bars.len().max(1) as f64;
    let summary = match bars.iter().max_by_key(|b| b.value) {
        Some(top) if max > 0 => format!(
            "{} {} {}; {}: {} ({}); {}: {} ({})",
            lang.pick("Staafdiagram over", "Bar chart over"),
            bars.len(),
            lang.pick("maanden", "months"),
            lang.pick("hoogste", "highest"),
            top.label,
            lang.number(top.value),
            lang.pick("laatste", "latest"),
            bars.last().map(|b| b.label.as_str()).unwrap_or(""),
            lang.number(bars.last().map_or(0, |b| b.value)),
        ),
        _ => lang
            .pick(
                "Staafdiagram: in deze maanden geen gegevens",
                "Bar chart: no data in these months",
            )
            .to_owned(),
    };
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{summary}\">\n\
         <text x=\"0\" y=\"14\">{max_label}: {max}</text>\n\
         <line class=\"axis\" x1=\"0\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\"></line>\n",
        summary = esc(&summary),
        max_label = lang.pick("hoogste", "highest"),
        max = lang.number(max),
        base = TOP + plot,
    );
    for (i, bar) in bars.iter().enumerate() {
        let height = if max == 0 {
            0.0
        } else {
            plot * bar.value as f64 / max as f64
        };
        let x = i as f64 * slot + slot * 0.15;
        // Every other month is labelled (the latest always): twelve labels
        // do not fit a phone's width.
        let short: String = if (bars.len() - 1 - i).is_multiple_of(2) {
            bar.label.chars().take(3).collect()
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\"></rect>\
             <text x=\"{tx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{short}</text>",
            y = TOP + plot - height,
            w = slot * 0.7,
            tx = i as f64 * slot + slot / 2.0,
            ty = HEIGHT - 6.0,
            short = esc(&short),
        );
    }
    out.push_str("</svg>\n</figure>\n");
    out
}

/// The numbers of a chart as a table, folded away under a summary.
pub fn table_details(lang: Lang, caption: &str, head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<details><summary>{show} <span class=\"visually-hidden\">{caption}</span></summary>\n\
         <div class=\"table-wrap\"><table>\n<caption class=\"visually-hidden\">{caption}</caption>\n<thead><tr>",
        show = lang.pick("Toon als tabel", "Show as table"),
        caption = esc(caption)
    );
    for (i, cell) in head.iter().enumerate() {
        let class = if i + 1 == head.len() {
            " class=\"num\""
        } else {
            ""
        };
        let _ = write!(out, "<th scope=\"col\"{class}>{}</th>", esc(cell));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                let _ = write!(out, "<td class=\"num\">{}</td>", esc(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div></details>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_says_in_words_what_it_shows_and_escapes_labels() {
        let bars = vec![
            Bar {
                label: "Veilig <online>".into(),
                value: 12,
            },
            Bar {
                label: "E-mail".into(),
                value: 3,
            },
        ];
        let svg = horizontal(Lang::Nl, "top", "Top 10", &bars, ("Cursus", "Aantal"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<span class=\"hbar-label\">1. Veilig &lt;online&gt;</span>"));
        assert!(svg.contains(
            "aria-label=\"Staafdiagram van 2 cursussen; hoogste: Veilig &lt;online&gt; (12)\""
        ));
        assert!(svg.contains("<td>Veilig &lt;online&gt;</td><td class=\"num\">12</td>"));
        assert!(!svg.contains("<online>"));
        let empty = horizontal(Lang::En, "top", "Top 10", &[], ("Course", "Count"));
        assert!(empty.contains("No data this month."));
        let trend = columns(Lang::Nl, "t", "Trend", &bars);
        assert!(trend.contains("hoogste: 12"));
    }
}
