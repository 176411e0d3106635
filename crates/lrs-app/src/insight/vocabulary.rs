//! The pages' words for the figures, statuses and months of
//! `crate::insight`, in Dutch and English, with each figure's one-line
//! definition (docs/progress-and-figures.md).

use crate::insight::{Figures, HitsChoice, Month, Status};
use crate::lang::Lang;

impl Lang {
    /// "oktober 2026" / "October 2026".
    pub fn month(self, month: Month) -> String {
        format!("{} {}", self.month_name(month.month), month.year)
    }

    /// Short month for chart axes: "okt 26" / "Oct 26".
    pub fn month_short(self, month: Month) -> String {
        let name: String = self.month_name(month.month).chars().take(3).collect();
        format!("{name} {:02}", month.year % 100)
    }

    pub fn status(self, status: Status) -> &'static str {
        match status {
            Status::NotStarted => self.pick("niet begonnen", "not started"),
            Status::Enrolled => self.pick("ingeschreven", "enrolled"),
            Status::InProgress => self.pick("bezig", "in progress"),
            Status::Failed => self.pick("niet gehaald", "failed"),
            Status::Completed => self.pick("afgerond", "completed"),
            Status::Passed => self.pick("geslaagd", "passed"),
        }
    }
}

/// One monthly figure: its JSON name, labels and a one-line definition
/// (docs/progress-and-figures.md).
pub struct FigureLabel {
    pub key: &'static str,
    pub nl: &'static str,
    pub en: &'static str,
    pub nl_help: &'static str,
    pub en_help: &'static str,
}

impl FigureLabel {
    pub fn label(&self, lang: Lang) -> &'static str {
        lang.pick(self.nl, self.en)
    }

    pub fn help(&self, lang: Lang) -> &'static str {
        lang.pick(self.nl_help, self.en_help)
    }

    pub fn value(&self, figures: &Figures) -> u64 {
        match self.key {
            "hits" => figures.hits,
            "launches" => figures.launches,
            "active_users" => figures.active_users,
            "enrolled_participants" => figures.enrolled_participants,
            "participants_started" => figures.participants_started,
            "courses_started" => figures.courses_started,
            "courses_completed" => figures.courses_completed,
            _ => 0,
        }
    }
}

/// The figures in the order the pages and downloads show them, with hits
/// as every statement (the Datatheek's hits); [`figures_for`] swaps in or
/// adds [`LAUNCHES`].
pub const FIGURES: [FigureLabel; 6] = [
    FigureLabel {
        key: "active_users",
        nl: "Actieve gebruikers",
        en: "Active users",
        nl_help: "Verschillende cursisten met minstens één activiteit deze maand.",
        en_help: "Different learners with at least one activity this month.",
    },
    FigureLabel {
        key: "enrolled_participants",
        nl: "Ingeschreven deelnemers",
        en: "Enrolled participants",
        nl_help: "Cursisten die zich deze maand voor een cursus inschreven.",
        en_help: "Learners who enrolled in a course this month.",
    },
    FigureLabel {
        key: "participants_started",
        nl: "Gestarte deelnemers",
        en: "Participants who started",
        nl_help: "Cursisten die deze maand iets deden in een cursus (meer dan inschrijven).",
        en_help: "Learners who did anything in a course this month (beyond enrolling).",
    },
    FigureLabel {
        key: "courses_started",
        nl: "Gestarte cursussen",
        en: "Courses started",
        nl_help: "Combinaties van cursist en cursus met activiteit deze maand.",
        en_help: "Learner–course pairs with activity this month.",
    },
    FigureLabel {
        key: "courses_completed",
        nl: "Afgeronde cursussen",
        en: "Courses completed",
        nl_help: "Combinaties van cursist en cursus die deze maand werden afgerond of gehaald.",
        en_help: "Learner–course pairs completed or passed this month.",
    },
    FigureLabel {
        key: "hits",
        nl: "Hits",
        en: "Hits",
        nl_help: "Leerregistraties (xAPI-statements) over leren in deze maand.",
        en_help: "Learning records (xAPI statements) about learning this month.",
    },
];

/// Hits as e-content statistics often mean them: launches.
pub const LAUNCHES: FigureLabel = FigureLabel {
    key: "launches",
    nl: "Hits (starts)",
    en: "Hits (launches)",
    nl_help: "Starts van e-content (het werkwoord launched) deze maand.",
    en_help: "Launches of e-content (the verb launched) this month.",
};

/// The figures to show with a choice of hits: every statement (`Hits`),
/// launches (`Hits (starts)`), or both as two columns; hits last, as ever.
pub fn figures_for(hits: HitsChoice) -> Vec<&'static FigureLabel> {
    let mut shown: Vec<&'static FigureLabel> = FIGURES.iter().filter(|f| f.key != "hits").collect();
    let statements = FIGURES.iter().find(|f| f.key == "hits").expect("hits");
    match hits {
        HitsChoice::Statements => shown.push(statements),
        HitsChoice::Launches => shown.push(&LAUNCHES),
        HitsChoice::Both => shown.extend([statements, &LAUNCHES]),
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_read_naturally() {
        let month = Month::new(2026, 10).unwrap();
        assert_eq!(Lang::Nl.month(month), "oktober 2026");
        assert_eq!(Lang::En.month_short(month), "Oct 26");
        assert_eq!(Lang::Nl.status(Status::InProgress), "bezig");
        assert_eq!(FIGURES.len(), 6);
        let both: Vec<&str> = figures_for(HitsChoice::Both)
            .iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(&both[4..], ["courses_completed", "hits", "launches"]);
        assert_eq!(
            figures_for(HitsChoice::Launches).last().unwrap().nl,
            "Hits (starts)"
        );
    }
}
