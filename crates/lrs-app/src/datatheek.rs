//! The KB Datatheek workbook (requirement 2.26): one month's figures per
//! library organisation (ISIL) and per app (appid), with totals and the
//! definitions, as a workbook with Dutch sheet and column names: Excel
//! (xlsx) or OpenDocument (ods), the same sheets and cells
//! ([`crate::sheets`]).
//!
//! The numbers come from [`crate::closing`], the same reads as the
//! dashboard and `/api/figures/*`, so the workbook and the dashboard cannot
//! disagree. Who downloads decides the rows: the KB gets every library and
//! app (defined ones without activity too, with zeros); a library or an app
//! gets only its own row.
//!
//! A closed month's workbook is made from its closing alone (figures,
//! names, rows, the time it was closed as the time it was made), so it is
//! the same file, byte for byte, however often it is downloaded and
//! whatever arrives later (in either format); which hits it shows is the
//! reader's choice.

use crate::closing;
use crate::error::AppError;
use crate::insight::vocabulary::{figures_for, FigureLabel};
use crate::insight::{
    self, Closing, FigureAccess, FigureScope, Figures, FiguresVersion, HitsChoice, Month,
    MonthlyFigures, Served,
};
use crate::sheets::{self, Book, Sheet, SheetFormat, Style};
use lrs_store::Store;
use std::collections::BTreeMap;

/// Sheet names (Dutch; the Datatheek's language).
pub const SHEET_TOTAL: &str = "Totaal";
pub const SHEET_LIBRARIES: &str = "Bibliotheken";
pub const SHEET_APPS: &str = "Apps";
pub const SHEET_TOP: &str = "Top 10 cursussen";
pub const SHEET_DEFINITIONS: &str = "Definities";

/// One row of the per-library or per-app sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// ISIL or appid.
    pub id: String,
    /// The tenant's name, when one with this ISIL or appid is defined.
    pub name: Option<String>,
    pub figures: Figures,
}

/// Everything the workbook shows for one month, as seen by one reader.
#[derive(Debug, Clone)]
pub struct Datatheek {
    pub month: Month,
    /// The reader's own total: everything for the KB, else its own scope.
    pub total: MonthlyFigures,
    pub libraries: Vec<Row>,
    pub apps: Vec<Row>,
    /// When it was made (RFC 3339, UTC): now, or when the month was closed.
    pub generated: String,
    pub generated_micros: i64,
    /// Which hits it shows.
    pub hits: HitsChoice,
}

impl Datatheek {
    /// The closing the workbook holds or is about (late statements since,
    /// what they changed): for the download's headers, never in the file.
    pub fn closing(&self) -> Option<&Closing> {
        self.total.closing.as_ref()
    }
}

/// Gathers one month for a reader with `access`: the closed version if the
/// month is closed (the latest, or `version`), else the live figures.
pub fn gather(
    store: &Store,
    access: &FigureAccess,
    month: Month,
    version: FiguresVersion,
    hits: HitsChoice,
) -> Result<Datatheek, AppError> {
    let total = closing::monthly(store, &access.default_scope(), month, version)?;
    let served_closed = total
        .closing
        .as_ref()
        .is_some_and(|c| c.served == Served::Closed);
    if served_closed {
        return gather_closed(store, access, month, version, hits, total);
    }
    let names = insight::TenantNames::load(store)?;
    let name_of = |list: &[(String, String)], id: &str| {
        list.iter()
            .find(|(known, _)| known == id)
            .map(|(_, name)| name.clone())
    };
    let (libraries, apps) = match access {
        FigureAccess::Kb => (
            rows(store, month, true, &names.libraries)?,
            rows(store, month, false, &names.apps)?,
        ),
        FigureAccess::Library(isil) => (
            vec![Row {
                id: isil.clone(),
                name: name_of(&names.libraries, isil),
                figures: total.figures.clone(),
            }],
            Vec::new(),
        ),
        FigureAccess::App(appid) => (
            Vec::new(),
            vec![Row {
                id: appid.clone(),
                name: name_of(&names.apps, appid),
                figures: total.figures.clone(),
            }],
        ),
    };
    let now = lrs_core::clock::now_micros();
    Ok(Datatheek {
        month,
        total,
        libraries,
        apps,
        generated: rfc3339(now),
        generated_micros: now,
        hits,
    })
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A closed version: every row and name from the closing itself.
fn gather_closed(
    store: &Store,
    access: &FigureAccess,
    month: Month,
    version: FiguresVersion,
    hits: HitsChoice,
    total: MonthlyFigures,
) -> Result<Datatheek, AppError> {
    let rows = |by_library: bool| -> Result<(i64, Vec<Row>), AppError> {
        let (about, rows) = closing::closed_rows(store, month, version, by_library)?
            .ok_or_else(|| AppError::internal("a closed month without its closing"))?;
        let rows = rows
            .into_iter()
            .map(|r| Row {
                id: r.id,
                name: r.name,
                figures: r.figures,
            })
            .collect();
        Ok((about.closed_micros, rows))
    };
    let (closed_micros, libraries) = rows(true)?;
    let (_, apps) = rows(false)?;
    let own = |list: Vec<Row>, id: &str| list.into_iter().filter(|r| r.id == id).collect();
    let (libraries, apps) = match access {
        FigureAccess::Kb => (libraries, apps),
        FigureAccess::Library(isil) => (own(libraries, isil), Vec::new()),
        FigureAccess::App(appid) => (Vec::new(), own(apps, appid)),
    };
    // The closing's time, not the download's: the same file every time.
    let closed_micros = total
        .closing
        .as_ref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c.closed_at).ok())
        .map(|t| t.timestamp_micros())
        .unwrap_or(closed_micros);
    Ok(Datatheek {
        month,
        total,
        libraries,
        apps,
        generated: rfc3339(closed_micros),
        generated_micros: closed_micros,
        hits,
    })
}

/// Every library's (or app's) row: those with activity in the month from
/// the breakdown, plus the defined ones without any (zeros), by id.
fn rows(
    store: &Store,
    month: Month,
    by_library: bool,
    defined: &[(String, String)],
) -> Result<Vec<Row>, AppError> {
    let mut rows: BTreeMap<String, Row> = defined
        .iter()
        .map(|(id, name)| {
            (
                id.clone(),
                Row {
                    id: id.clone(),
                    name: Some(name.clone()),
                    figures: Figures::default(),
                },
            )
        })
        .collect();
    for row in insight::live_breakdown(store, month, by_library)?.rows {
        let entry = rows.entry(row.id.clone()).or_insert_with(|| Row {
            id: row.id.clone(),
            name: None,
            figures: Figures::default(),
        });
        entry.figures = row.figures;
        if entry.name.is_none() {
            entry.name = row.name;
        }
    }
    Ok(rows.into_values().collect())
}

/// The definitions sheet: (figure key, Dutch definition, English definition).
/// The short labels are the dashboard's (`insight::vocabulary::FIGURES`);
/// these are the full texts of docs/progress-and-figures.md.
const DEFINITIONS: [(&str, &str, &str); 7] = [
    (
        "active_users",
        "Het aantal verschillende cursisten met minstens één leerregistratie in de maand (een intrekking alleen maakt niemand actief).",
        "The number of different learners with at least one statement in the month (a voiding statement alone makes no one active).",
    ),
    (
        "enrolled_participants",
        "Het aantal verschillende cursisten dat zich in de maand voor minstens één cursus inschreef: met een inschrijfwerkwoord, of met de eerste registratie van een cmi5-inschrijving (registration) voor een cursus.",
        "The number of different learners who enrolled in at least one course in the month: with an enrolment verb, or by the first statement of a cmi5 registration for a course.",
    ),
    (
        "participants_started",
        "Het aantal verschillende cursisten dat in de maand iets deed in een cursus, meer dan alleen inschrijven.",
        "The number of different learners who did anything in a course other than enrolling, in the month.",
    ),
    (
        "courses_started",
        "Het aantal verschillende combinaties van cursist en cursus met activiteit (meer dan inschrijven) in de maand: wie in drie cursussen werkt telt drie keer.",
        "The number of different learner–course pairs with any activity other than enrolling in the month: one learner in three courses counts three.",
    ),
    (
        "courses_completed",
        "Het aantal verschillende combinaties van cursist en cursus waarbij de cursist in de maand de cursus zelf (niet een module) afrondde of haalde, of de laatste nog ontbrekende module van een cursus met bekende opbouw voldeed (cmi5 moveOn).",
        "The number of different learner–course pairs where the learner completed or passed the course itself (not a module), or satisfied the last missing module of a course whose structure is known (cmi5 moveOn), in the month.",
    ),
    (
        "hits",
        "Het aantal leerregistraties (xAPI-statements) over leren in de maand, ook buiten cursussen; ingetrokken registraties en intrekkingen tellen niet.",
        "The number of statements about learning in the month, also outside courses; voided statements and voiding statements do not count.",
    ),
    (
        "launches",
        "Het aantal starts van e-content in de maand: leerregistraties met het werkwoord 'launched' (cmi5), in of buiten een cursus.",
        "The number of launches of e-content in the month: statements with the verb 'launched' (cmi5), in or outside a course.",
    ),
];

/// General rules shown above the definitions.
const RULES: [(&str, &str); 5] = [
    (
        "Een maand is een kalendermaand in Nederlandse tijd (Europe/Amsterdam).",
        "A month is a calendar month in Dutch time (Europe/Amsterdam).",
    ),
    (
        "Een leerregistratie telt in de maand van haar timestamp (wanneer het leren gebeurde), anders van het moment van opslaan.",
        "A statement counts in the month of its timestamp (when the learning happened), else of when it was stored.",
    ),
    (
        "Eén cursist is één persoon, ook als die meerdere apps of bibliotheken gebruikt. Daarom is het totaal van verschillende cursisten geen optelsom van de rijen.",
        "One learner is one person, also across apps and libraries. So totals of different learners are not the sum of the rows.",
    ),
    (
        "Bibliotheek: de ISIL uit de leerregistratie (contextextensie) of van de schrijvende bibliotheek. App: de appid van de schrijvende app of uit de contextextensie.",
        "Library: the ISIL from the statement (context extension) or of the writing library. App: the appid of the writing app or from the context extension.",
    ),
    (
        "Een afgesloten maand verandert niet meer: de werkmap van een afgesloten versie is steeds hetzelfde bestand. Leerregistraties die later binnenkomen tellen alleen in de actuele cijfers (en in een nieuwe versie, als de KB de maand opnieuw afsluit).",
        "A closed month no longer changes: the workbook of a closed version is the same file every time. Statements that arrive later count only in the live figures (and in a new version, if the KB closes the month again).",
    ),
];

/// The workbook as bytes, as xlsx or ods (the same sheets, cells and order).
pub fn workbook(data: &Datatheek, format: SheetFormat) -> Result<Vec<u8>, AppError> {
    sheets::write(&book(data), format)
}

/// The workbook's sheets and cells, apart from the file format.
pub fn book(data: &Datatheek) -> Book {
    // The file's own creation time is the workbook's: a closed month's
    // workbook is the same bytes every time.
    let mut book = Book::new(data.generated_micros);
    let figures = figures_for(data.hits);

    // Totaal: the reader's total, one row, plus where it comes from.
    let sheet = book.add_sheet(SHEET_TOTAL);
    sheet.write_with(0, 0, "Maand", Style::Header);
    sheet.write_with(0, 1, "Bereik", Style::Header);
    for (col, figure) in figures.iter().enumerate() {
        sheet.write_with(0, col as u16 + 2, figure.nl, Style::Header);
    }
    sheet.write(1, 0, data.month.to_string());
    sheet.write(1, 1, scope_text(&data.total.scope));
    for (col, figure) in figures.iter().enumerate() {
        sheet.write(1, col as u16 + 2, figure.value(&data.total.figures) as f64);
    }
    sheet.write_with(3, 0, "Gemaakt op (UTC)", Style::Bold);
    sheet.write(3, 1, data.generated.as_str());
    sheet.write_with(4, 0, "Bron", Style::Bold);
    sheet.write(
        4,
        1,
        "xAPI Learning Record Store: dezelfde cijfers als het dashboard (/dashboard, /api/figures/monthly).",
    );
    sheet.write_with(5, 0, "Versie", Style::Bold);
    sheet.write(5, 1, version_text(data.total.closing.as_ref()));
    sheet.write_with(6, 0, "Hits", Style::Bold);
    sheet.write(
        6,
        1,
        match data.hits {
            HitsChoice::Statements => "alle leerregistraties",
            HitsChoice::Launches => "starts (launched)",
            HitsChoice::Both => "alle leerregistraties en starts (launched), in twee kolommen",
        },
    );
    sheet.set_column_width(0, 18.0);
    sheet.set_column_width(1, 28.0);
    sheet.set_column_range_width(2, figures.len() as u16 + 1, 16.0);
    sheet.freeze_rows(1);

    let sheet = book.add_sheet(SHEET_LIBRARIES);
    figure_rows(sheet, "ISIL", "Bibliotheek", &data.libraries, &figures);
    let sheet = book.add_sheet(SHEET_APPS);
    figure_rows(sheet, "Appid", "App", &data.apps, &figures);

    top_sheet(&mut book, std::slice::from_ref(data), false);
    definitions_sheet(&mut book, &figures);
    book
}

/// Top 10: the started and the completed courses of each month's total,
/// with the month in a first column when the book holds several months.
fn top_sheet(book: &mut Book, months: &[Datatheek], month_column: bool) {
    let sheet = book.add_sheet(SHEET_TOP);
    let first = u16::from(month_column);
    if month_column {
        sheet.write_with(0, 0, "Maand", Style::Header);
    }
    for (col, head) in [
        "Lijst",
        "Plaats",
        "Cursus",
        "Cursus-id",
        "Combinaties cursist–cursus",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_with(0, first + col as u16, *head, Style::Header);
    }
    let mut row = 1;
    for data in months {
        for (list, courses) in [
            ("Gestarte cursussen", &data.total.top_started),
            ("Afgeronde cursussen", &data.total.top_completed),
        ] {
            for (rank, course) in courses.iter().enumerate() {
                if month_column {
                    sheet.write(row, 0, data.month.to_string());
                }
                sheet.write(row, first, list);
                sheet.write(row, first + 1, (rank + 1) as f64);
                sheet.write(row, first + 2, course.name.clone().unwrap_or_default());
                sheet.write(row, first + 3, course.course.as_str());
                sheet.write(row, first + 4, course.count as f64);
                row += 1;
            }
        }
    }
    sheet.set_column_width(first, 20.0);
    sheet.set_column_width(first + 2, 36.0);
    sheet.set_column_width(first + 3, 48.0);
    sheet.set_column_width(first + 4, 16.0);
    sheet.freeze_rows(1);
}

/// The definitions sheet: the rules, then one row per figure, Dutch then English.
fn definitions_sheet(book: &mut Book, figures: &[&FigureLabel]) {
    let sheet = book.add_sheet(SHEET_DEFINITIONS);
    for (col, head) in [
        "Cijfer",
        "Betekenis",
        "Figure (English)",
        "Definition (English)",
        "Kolom in JSON",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_with(0, col as u16, *head, Style::Header);
    }
    let mut row = 1;
    for (nl, en) in RULES {
        sheet.write_with(row, 1, nl, Style::Wrap);
        sheet.write_with(row, 3, en, Style::Wrap);
        row += 1;
    }
    for figure in figures.iter() {
        let (_, nl, en) = DEFINITIONS
            .iter()
            .find(|(key, _, _)| *key == figure.key)
            .copied()
            .unwrap_or((figure.key, figure.nl_help, figure.en_help));
        sheet.write_with(row, 0, figure.nl, Style::Bold);
        sheet.write_with(row, 1, nl, Style::Wrap);
        sheet.write(row, 2, figure.en);
        sheet.write_with(row, 3, en, Style::Wrap);
        sheet.write(row, 4, figure.key);
        row += 1;
    }
    sheet.set_column_width(0, 26.0);
    sheet.set_column_width(1, 70.0);
    sheet.set_column_width(2, 26.0);
    sheet.set_column_width(3, 70.0);
    sheet.set_column_width(4, 24.0);
}

/// A workbook of several months (`lrs export datatheek --month A --to-month
/// B`): the same sheets as one month's, with the month as the first column
/// of every row (Totaal: one row per month; Bibliotheken, Apps, Top 10: the
/// month's rows, month by month), and one Definities sheet. Made at the
/// time of the latest month's workbook.
pub fn workbook_range(months: &[Datatheek], format: SheetFormat) -> Result<Vec<u8>, AppError> {
    sheets::write(&book_range(months), format)
}

fn book_range(months: &[Datatheek]) -> Book {
    let made = months.iter().map(|m| m.generated_micros).max().unwrap_or(0);
    let mut book = Book::new(made);
    let hits = months.first().map(|m| m.hits).unwrap_or_default();
    let figures = figures_for(hits);
    let first_figure = 2u16;

    let sheet = book.add_sheet(SHEET_TOTAL);
    sheet.write_with(0, 0, "Maand", Style::Header);
    sheet.write_with(0, 1, "Bereik", Style::Header);
    for (col, figure) in figures.iter().enumerate() {
        sheet.write_with(0, col as u16 + first_figure, figure.nl, Style::Header);
    }
    let after = figures.len() as u16 + first_figure;
    sheet.write_with(0, after, "Versie", Style::Header);
    sheet.write_with(0, after + 1, "Gemaakt op (UTC)", Style::Header);
    for (i, data) in months.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write(r, 0, data.month.to_string());
        sheet.write(r, 1, scope_text(&data.total.scope));
        for (col, figure) in figures.iter().enumerate() {
            sheet.write(
                r,
                col as u16 + first_figure,
                figure.value(&data.total.figures) as f64,
            );
        }
        sheet.write(r, after, version_text(data.total.closing.as_ref()));
        sheet.write(r, after + 1, data.generated.as_str());
    }
    sheet.set_column_width(0, 12.0);
    sheet.set_column_width(1, 28.0);
    sheet.freeze_rows(1);

    for (name, id_head, name_head, by_library) in [
        (SHEET_LIBRARIES, "ISIL", "Bibliotheek", true),
        (SHEET_APPS, "Appid", "App", false),
    ] {
        let sheet = book.add_sheet(name);
        sheet.write_with(0, 0, "Maand", Style::Header);
        sheet.write_with(0, 1, id_head, Style::Header);
        sheet.write_with(0, 2, name_head, Style::Header);
        for (col, figure) in figures.iter().enumerate() {
            sheet.write_with(0, col as u16 + 3, figure.nl, Style::Header);
        }
        let mut r = 1u32;
        for data in months {
            let rows = if by_library {
                &data.libraries
            } else {
                &data.apps
            };
            for row in rows {
                sheet.write(r, 0, data.month.to_string());
                sheet.write(r, 1, row.id.as_str());
                sheet.write(r, 2, row.name.clone().unwrap_or_default());
                for (col, figure) in figures.iter().enumerate() {
                    sheet.write(r, col as u16 + 3, figure.value(&row.figures) as f64);
                }
                r += 1;
            }
        }
        sheet.set_column_width(1, 18.0);
        sheet.set_column_width(2, 32.0);
        sheet.freeze_rows(1);
        if r > 1 {
            sheet.set_autofilter(0, 0, r - 1, figures.len() as u16 + 2);
        }
    }

    top_sheet(&mut book, months, true);
    definitions_sheet(&mut book, &figures);
    book
}

fn scope_text(scope: &FigureScope) -> String {
    match scope {
        FigureScope::Total => "Alle bibliotheken en apps".to_owned(),
        FigureScope::Library(isil) => format!("Bibliotheek {isil}"),
        FigureScope::App(appid) => format!("App {appid}"),
    }
}

/// "Afgesloten versie 2 (afgesloten op …)" or "Actuele cijfers".
fn version_text(closing: Option<&Closing>) -> String {
    match closing {
        Some(c) if c.served == Served::Closed => format!(
            "afgesloten versie {} (afgesloten op {} door {})",
            c.version, c.closed_at, c.closed_by
        ),
        Some(c) => format!(
            "actuele cijfers (de maand is afgesloten, versie {} op {}, maar deze werkmap toont de actuele stand)",
            c.latest_version, c.closed_at
        ),
        None => "actuele cijfers (de maand is nog niet afgesloten)".to_owned(),
    }
}

/// A sheet of rows (per library or per app): id, name, the figures.
fn figure_rows(
    sheet: &mut Sheet,
    id_head: &str,
    name_head: &str,
    rows: &[Row],
    figures: &[&FigureLabel],
) {
    sheet.write_with(0, 0, id_head, Style::Header);
    sheet.write_with(0, 1, name_head, Style::Header);
    for (col, figure) in figures.iter().enumerate() {
        sheet.write_with(0, col as u16 + 2, figure.nl, Style::Header);
    }
    for (i, row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write(r, 0, row.id.as_str());
        sheet.write(r, 1, row.name.clone().unwrap_or_default());
        for (col, figure) in figures.iter().enumerate() {
            sheet.write(r, col as u16 + 2, figure.value(&row.figures) as f64);
        }
    }
    sheet.set_column_width(0, 18.0);
    sheet.set_column_width(1, 32.0);
    sheet.set_column_range_width(2, figures.len() as u16 + 1, 16.0);
    sheet.freeze_rows(1);
    if !rows.is_empty() {
        sheet.set_autofilter(0, 0, rows.len() as u32, figures.len() as u16 + 1);
    }
}

/// Every month with a closed version, oldest first, with its latest
/// version: what the scheduled delivery (`lrs serve --datatheek-to`)
/// considers.
pub fn closed_months(store: &Store) -> Result<Vec<(Month, u32)>, AppError> {
    let mut found = Vec::new();
    for key in store.figure_months()? {
        let Some(month) = closing::month_of_key(&key) else {
            continue;
        };
        if let Some(latest) = store.latest_closing(key)? {
            found.push((month, latest.version));
        }
    }
    Ok(found)
}

/// The workbooks of closed `version` of `month` that the scheduled delivery
/// writes, each with its download's file name: the KB's (every library and
/// app) and one per library the closing recorded, each the file `GET
/// /api/figures/datatheek?month=...&version=N` gives that reader (hits as
/// statements), so the same bytes however often it is made.
pub fn closed_workbooks(
    store: &Store,
    month: Month,
    version: u32,
) -> Result<Vec<(String, Vec<u8>)>, AppError> {
    let version = FiguresVersion::Closed(version);
    let mut readers = vec![FigureAccess::Kb];
    if let Some((_, rows)) = closing::closed_rows(store, month, version, true)? {
        readers.extend(rows.into_iter().map(|row| FigureAccess::Library(row.id)));
    }
    readers
        .iter()
        .map(|reader| {
            let data = gather(store, reader, month, version, HitsChoice::default())?;
            Ok((
                file_name(reader, month, SheetFormat::Xlsx),
                workbook(&data, SheetFormat::Xlsx)?,
            ))
        })
        .collect()
}

/// The download's file name: `datatheek-2026-10.xlsx` (the KB's; `.ods`
/// for OpenDocument), else with the library's or app's id.
pub fn file_name(access: &FigureAccess, month: Month, format: SheetFormat) -> String {
    let suffix = match access {
        FigureAccess::Kb => String::new(),
        FigureAccess::Library(id) | FigureAccess::App(id) => format!(
            "-{}",
            id.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                })
                .collect::<String>()
        ),
    };
    format!("datatheek-{month}{suffix}.{}", format.extension())
}
