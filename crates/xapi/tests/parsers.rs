//! Property tests of the string parsers the validators and the HTTP layer
//! use (seeded generators, so a failure names a seed that reproduces it):
//! what a generator builds from the grammar is accepted, what it breaks is
//! refused, nothing panics, and each parser is linear in its input.

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, SecondsFormat, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use xapi::format::{accept_languages, comparison_form, MAX_ACCEPT_LANGUAGES};
use xapi::validate::{is_duration, is_iri, is_language_tag, is_uuid, parse_timestamp};

const SEED: u64 = 0x9a25e;
const CASES: usize = 2_000;

fn random_text(rng: &mut StdRng, max: usize) -> String {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '9', '-', ':', '/', '.', '?', '#', '%', '@', ' ', 'T', 'P', 'S', 'H', 'M',
        'W', 'Y', 'D', '+', ',', 'é', '中', '\u{0}', '[', ']', '_', '~',
    ];
    (0..rng.gen_range(0..max))
        .map(|_| *ALPHABET.choose(rng).unwrap())
        .collect()
}

#[test]
fn uuids_in_either_case_are_accepted_and_one_broken_digit_is_not() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for _ in 0..CASES {
        let id = uuid::Uuid::from_u128(rng.gen());
        let text = if rng.gen_bool(0.5) {
            id.hyphenated().to_string()
        } else {
            id.hyphenated().to_string().to_uppercase()
        };
        assert!(is_uuid(&text), "{text}");
        let mut broken: Vec<char> = text.chars().collect();
        let at = rng.gen_range(0..broken.len());
        broken[at] = *['g', 'x', ' ', '{'].choose(&mut rng).unwrap();
        let broken: String = broken.into_iter().collect();
        assert!(!is_uuid(&broken), "{broken}");
        assert!(!is_uuid(&id.simple().to_string()));
        let _ = is_uuid(&random_text(&mut rng, 40));
    }
}

#[test]
fn timestamps_round_trip_to_the_same_instant() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    for _ in 0..CASES {
        let seconds = rng.gen_range(0i64..4_000_000_000);
        let nanos = rng.gen_range(0u32..1_000_000_000);
        let instant: DateTime<Utc> = Utc.timestamp_opt(seconds, nanos).unwrap();
        let offset =
            FixedOffset::east_opt(rng.gen_range(-23 * 3600..=23 * 3600) / 60 * 60).unwrap();
        let local = instant.with_timezone(&offset);
        let precision = *[
            SecondsFormat::Secs,
            SecondsFormat::Millis,
            SecondsFormat::Micros,
            SecondsFormat::Nanos,
        ]
        .choose(&mut rng)
        .unwrap();
        let text = local.to_rfc3339_opts(precision, rng.gen_bool(0.5));
        let parsed = parse_timestamp(&text).unwrap_or_else(|| panic!("{text}"));
        let kept = match precision {
            SecondsFormat::Secs => instant - ChronoDuration::nanoseconds(nanos as i64),
            SecondsFormat::Millis => {
                instant - ChronoDuration::nanoseconds((nanos % 1_000_000) as i64)
            }
            SecondsFormat::Micros => instant - ChronoDuration::nanoseconds((nanos % 1_000) as i64),
            _ => instant,
        };
        assert_eq!(parsed, kept, "{text}");
        let _ = parse_timestamp(&random_text(&mut rng, 40));
        // A month or an hour out of range is refused.
        let bad = text.replacen('T', "T9", 1);
        assert!(parse_timestamp(&bad).is_none(), "{bad}");
    }
}

#[test]
fn durations_built_from_the_grammar_are_accepted() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    for _ in 0..CASES {
        let mut text = String::from("P");
        if rng.gen_bool(0.1) {
            text.push_str(&format!("{}W", rng.gen_range(0..100)));
            assert!(is_duration(&text), "{text}");
            continue;
        }
        let mut any = false;
        for designator in ['Y', 'M', 'D'] {
            if rng.gen_bool(0.4) {
                text.push_str(&format!("{}{designator}", rng.gen_range(0..1000)));
                any = true;
            }
        }
        let time: Vec<char> = ['H', 'M', 'S']
            .into_iter()
            .filter(|_| rng.gen_bool(0.5))
            .collect();
        if !time.is_empty() || !any {
            text.push('T');
            let time = if time.is_empty() { vec!['S'] } else { time };
            for (i, designator) in time.iter().enumerate() {
                let last = i + 1 == time.len();
                if last && rng.gen_bool(0.5) {
                    text.push_str(&format!(
                        "{}.{}",
                        rng.gen_range(0..100),
                        rng.gen_range(0..10_000)
                    ));
                } else {
                    text.push_str(&rng.gen_range(0..100).to_string());
                }
                text.push(*designator);
            }
        }
        assert!(is_duration(&text), "{text}");
        assert!(!is_duration(&format!("-{text}")), "-{text}");
        assert!(!is_duration(&format!("{text}T")), "{text}T");
        let _ = is_duration(&random_text(&mut rng, 30));
    }
}

#[test]
fn language_tags_and_iris_from_their_grammar_are_accepted() {
    let mut rng = StdRng::seed_from_u64(SEED + 3);
    let languages = ["en", "nl", "de", "fr", "zh", "sgn"];
    let scripts = ["", "-Latn", "-Hant"];
    let regions = ["", "-US", "-NL", "-419"];
    let schemes = ["http", "https", "urn", "mailto", "tag", "x-app"];
    for _ in 0..CASES {
        let tag = format!(
            "{}{}{}",
            languages.choose(&mut rng).unwrap(),
            scripts.choose(&mut rng).unwrap(),
            regions.choose(&mut rng).unwrap()
        );
        assert!(is_language_tag(&tag), "{tag}");
        assert!(
            !is_language_tag(&tag.replace('-', "_")) || !tag.contains('-'),
            "{tag}"
        );
        let path: String = (0..rng.gen_range(0..5))
            .map(|_| format!("/{}", rng.gen_range(0..1000)))
            .collect();
        let iri = format!(
            "{}://x{}.example{path}",
            schemes.choose(&mut rng).unwrap(),
            rng.gen::<u16>()
        );
        assert!(is_iri(&iri), "{iri}");
        assert!(!is_iri(&iri.replace(':', "")), "{iri}");
        assert!(!is_iri(&format!("{iri} x")), "{iri} x");
        let _ = is_iri(&random_text(&mut rng, 60));
        let _ = is_language_tag(&random_text(&mut rng, 20));
    }
}

#[test]
fn accept_language_keeps_the_most_preferred_few() {
    let mut rng = StdRng::seed_from_u64(SEED + 4);
    for _ in 0..CASES / 4 {
        let entries: Vec<String> = (0..rng.gen_range(0..200))
            .map(|i| format!("l{i};q=0.{}", rng.gen_range(0..10)))
            .collect();
        let header = entries.join(", ");
        let languages = accept_languages(&header);
        assert!(languages.len() <= MAX_ACCEPT_LANGUAGES);
        let _ = accept_languages(&random_text(&mut rng, 200));
    }
    assert_eq!(
        accept_languages("fr;q=0.1, nl, en;q=0.5"),
        ["nl", "en", "fr"]
    );
}

#[test]
fn group_members_compare_in_any_order() {
    let mut rng = StdRng::seed_from_u64(SEED + 5);
    for _ in 0..50 {
        let mut members: Vec<Value> = (0..rng.gen_range(1..300))
            .map(|i| json!({"mbox": format!("mailto:m{i}@x.example"), "name": format!("m{i}")}))
            .collect();
        let statement = |members: &[Value]| json!({"actor": {"objectType": "Group", "member": members}, "verb": {"id": "x:v"}, "object": {"id": "x:o"}});
        let before = comparison_form(&statement(&members));
        members.shuffle(&mut rng);
        assert_eq!(comparison_form(&statement(&members)), before);
    }
}

/// Each parser takes about twice as long for twice the input: an input
/// 16 times longer may take at most 64 times as long (quadratic would be
/// 256), measured over enough repetitions to be above the clock's noise.
#[test]
fn the_parsers_are_linear_in_their_input() {
    fn time(f: impl Fn()) -> Duration {
        let began = Instant::now();
        for _ in 0..20 {
            f();
        }
        began.elapsed()
    }
    type Case = (&'static str, Box<dyn Fn(usize) -> String>, fn(&str) -> bool);
    let cases: Vec<Case> = vec![
        (
            "iri",
            Box::new(|n| format!("http://x.example/{}", "a/".repeat(n))),
            is_iri,
        ),
        (
            "iri (full parser)",
            Box::new(|n| format!("http://x.example/{}", "é/".repeat(n))),
            is_iri,
        ),
        (
            "duration",
            Box::new(|n| format!("PT{}S", "1".repeat(n))),
            is_duration,
        ),
        (
            "timestamp",
            Box::new(|n| format!("2024-01-01T00:00:00.{}Z", "1".repeat(n))),
            |s| parse_timestamp(s).is_some(),
        ),
    ];
    for (name, make, parse) in cases {
        let small = make(2_000);
        let large = make(32_000);
        // Warm up, then take the best of three.
        let _ = parse(&small);
        let best = |input: &str| {
            (0..3)
                .map(|_| {
                    time(|| {
                        let _ = parse(input);
                    })
                })
                .min()
                .unwrap()
        };
        let (t_small, t_large) = (best(&small), best(&large));
        assert!(
            t_large <= t_small * 64 + Duration::from_millis(20),
            "{name}: {t_small:?} for {} bytes, {t_large:?} for {} bytes",
            small.len(),
            large.len()
        );
    }
}
