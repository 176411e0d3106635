//! The xAPI special data types (IRI, UUID, timestamp, duration, language
//! tag, mailto, sha1) as pure string predicates. No I/O, no HTTP, no JSON:
//! these functions only ever see one string.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

/// An absolute IRI (RFC 3987): it has a scheme. Relative references and the
/// empty string are not IRIs here.
pub fn is_iri(s: &str) -> bool {
    match common_ascii_iri(s) {
        Some(valid) => valid,
        None => oxiri::Iri::parse(s).is_ok(),
    }
}

/// A fast path for the IRIs statements are made of (`http(s)://host/path`,
/// `urn:...`, `mailto:...`): `Some(true)` when `s` matches a plain-ASCII
/// subset of the RFC 3987 grammar (no percent-encoding, no userinfo, no IP
/// literals), `None` when unsure, leaving the full parser to decide.
fn common_ascii_iri(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    let colon = b.iter().position(|&c| c == b':')?;
    let scheme_ok = colon > 0
        && b[0].is_ascii_alphabetic()
        && b[1..colon]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    let mut i = colon + 1;
    let run = |i: &mut usize, class: u8| {
        while *i < b.len() && IRI_CLASSES[b[*i] as usize] & class != 0 {
            *i += 1;
        }
    };
    if b[i..].starts_with(b"//") {
        i += 2;
        run(&mut i, HOST);
        if i < b.len() && b[i] == b':' {
            i += 1;
            run(&mut i, DIGIT);
        }
        if i < b.len() && !matches!(b[i], b'/' | b'?' | b'#') {
            return None;
        }
    }
    run(&mut i, PATH);
    if i < b.len() && b[i] == b'?' {
        i += 1;
        run(&mut i, QUERY);
    }
    if i < b.len() && b[i] == b'#' {
        i += 1;
        run(&mut i, QUERY);
    }
    (i == b.len()).then_some(true)
}

/// Character classes of the ASCII IRI fast path: `HOST` is unreserved and
/// sub-delims (a reg-name), `PATH` adds `:`, `@` (a pchar) and `/`, `QUERY`
/// (also used for fragments) adds `?`.
const HOST: u8 = 1;
const PATH: u8 = 2;
const QUERY: u8 = 4;
const DIGIT: u8 = 8;
static IRI_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let host = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        let path = host || matches!(b, b':' | b'@' | b'/');
        let query = path || b == b'?';
        table[c] = (host as u8 * HOST)
            | (path as u8 * PATH)
            | (query as u8 * QUERY)
            | (b.is_ascii_digit() as u8 * DIGIT);
        c += 1;
    }
    table
};

/// A UUID in the standard 8-4-4-4-12 hexadecimal string form (either case).
/// No braces, no `urn:uuid:` prefix, no simple (unhyphenated) form.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An RFC 5646 language tag, as used for language map keys and
/// `context.language`.
pub fn is_language_tag(s: &str) -> bool {
    oxilangtag::LanguageTag::parse(s).is_ok()
}

/// An `mbox` value: `mailto:` followed by an email address, the whole being
/// an IRI.
pub fn is_mailto_iri(s: &str) -> bool {
    let Some(address) = s.strip_prefix("mailto:") else {
        return false;
    };
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains(['?', '#', '/'])
        && !address.contains(char::is_whitespace)
        && is_iri(s)
}

/// A hex-encoded SHA-1 digest (40 hex digits, either case).
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A hex-encoded SHA-2 digest: SHA-224, SHA-256, SHA-384 or SHA-512.
pub fn is_sha2_hex(s: &str) -> bool {
    matches!(s.len(), 56 | 64 | 96 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An Internet media type (RFC 2046) in its basic `type/subtype[; params]`
/// shape. Parameters are not checked.
pub fn is_media_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let is_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) => is_token(kind) && is_token(sub),
        None => false,
    }
}

/// A `version` property value of the form `major.minor` or
/// `major.minor.patch` with the given major and minor.
pub(crate) fn is_version_of(s: &str, major_minor: &str) -> bool {
    match s.strip_prefix(major_minor) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Parses an ISO 8601 combined date and time as xAPI uses it (RFC 3339 is
/// the recommended profile):
///
/// * extended `YYYY-MM-DDThh:mm[:ss[.f+]]` or basic `YYYYMMDDThhmm[ss[.f+]]`
///   (the date and the time in the same format; `,` is accepted as decimal
///   sign, `t` as separator);
/// * then `Z`, `±hh:mm`, `±hhmm`, `±hh`, or nothing (no offset is read as
///   UTC, since the spec only says a timestamp SHOULD include its zone);
/// * a negative zero offset (`-00`, `-0000`, `-00:00`: "offset unknown" in
///   RFC 3339, not allowed by ISO 8601) is rejected, as are date-only values,
///   hour 24 and out-of-range fields. A leap second (`:60`) is accepted.
///
/// Fractions beyond nanoseconds are truncated.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = c.digits(4)?;
    let extended = c.eat(b'-');
    let month = c.digits(2)?;
    if extended && !c.eat(b'-') {
        return None;
    }
    let day = c.digits(2)?;
    if !(c.eat(b'T') || c.eat(b't')) {
        return None;
    }
    let hour = c.digits(2)?;
    if extended && !c.eat(b':') {
        return None;
    }
    let minute = c.digits(2)?;
    let mut second = 0;
    let mut nanos = 0u32;
    let has_seconds = if extended {
        c.eat(b':')
    } else {
        c.peek().is_some_and(|b| b.is_ascii_digit())
    };
    if has_seconds {
        second = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            nanos = c.fraction_nanos()?;
        }
    }
    let offset_seconds: i32 = match c.next() {
        None => 0,
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = c.digits(2)?;
            // `±hh:mm`, `±hhmm` or just `±hh`
            let om = if c.eat(b':') || c.peek().is_some() {
                c.digits(2)?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let total = (oh * 3600 + om * 60) as i32;
            if sign == b'-' {
                if total == 0 {
                    return None; // "-00:00": unknown local offset
                }
                -total
            } else {
                total
            }
        }
        Some(_) => return None,
    };
    if !c.at_end() {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos)?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    let offset = FixedOffset::east_opt(offset_seconds)?;
    offset.from_local_datetime(&date.and_time(time)).single()
}

/// An ISO 8601:2004 section 4.4.3.2 duration: `PnYnMnDTnHnMnS` (any
/// components, in order, at least one; `T` only before time components) or
/// `PnW` alone. Only the last component may carry a decimal fraction (`.`
/// or `,`). The alternative format (`P0003-01-02T...`) and negative
/// durations are rejected.
pub fn is_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    // Weeks stand alone.
    if let Some(number) = rest.strip_suffix('W') {
        return is_duration_number(number, true);
    }
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return false;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut last_had_fraction = false;
    let mut components = 0;
    for (part, designators) in [
        (date_part, &b"YMD"[..]),
        (time_part.unwrap_or(""), &b"HMS"[..]),
    ] {
        let mut remaining = part;
        let mut allowed = designators;
        while !remaining.is_empty() {
            if last_had_fraction {
                return false; // a fraction is only allowed on the last component
            }
            let Some(end) = remaining.find(|c: char| c.is_ascii_alphabetic()) else {
                return false;
            };
            let (number, tail) = remaining.split_at(end);
            let designator = tail.as_bytes()[0];
            let Some(position) = allowed.iter().position(|&d| d == designator) else {
                return false;
            };
            allowed = &allowed[position + 1..];
            if !is_duration_number(number, true) {
                return false;
            }
            last_had_fraction = number.contains(['.', ',']);
            components += 1;
            remaining = &tail[1..];
        }
    }
    components > 0
}

fn is_duration_number(number: &str, allow_fraction: bool) -> bool {
    let (whole, fraction) = match number.split_once(['.', ',']) {
        Some((w, f)) if allow_fraction => (w, Some(f)),
        Some(_) => return false,
        None => (number, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }
    fn eat(&mut self, expected: u8) -> bool {
        if self.peek() == Some(expected) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
    fn digits(&mut self, n: usize) -> Option<u32> {
        let chunk = self.b.get(self.i..self.i + n)?;
        let mut value = 0u32;
        for &d in chunk {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        self.i += n;
        Some(value)
    }
    /// One or more digits after a decimal sign, as nanoseconds (truncated).
    fn fraction_nanos(&mut self) -> Option<u32> {
        let start = self.i;
        let mut nanos = 0u32;
        let mut scale = 100_000_000u32;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
            self.i += 1;
        }
        (self.i > start).then_some(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        for ok in [
            "2008-09-15T15:53:00.601Z",
            "2008-09-15T15:53:00.601+00:00",
            "2008-09-15T15:53:00+05:30",
            "2008-09-15T15:53:00.601-05",
            "2008-09-15T15:53:00.601+0000",
            "2008-09-15T15:53Z",
            "2008-09-15T15:53:00",
            "20080915T155300Z",
            "2008-09-15T15:53:00.123456789123Z",
            "2016-12-31T23:59:60Z",
            "2023-05-04T12:00:00-05:00",
        ] {
            assert!(parse_timestamp(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "should fail",
            "01/011/2015",
            "2008-09-15",
            "2008-09-15T15:53:00.601-00",
            "2008-09-15T15:53:00.601-0000",
            "2008-09-15T15:53:00.601-00:00",
            "2008-09-15 15:53:00Z",
            "2008-13-15T15:53:00Z",
            "2008-02-30T15:53:00Z",
            "2008-09-15T24:00:00Z",
            "2008-09-15T15:53:00.Z",
            "2008-09-15T15:53:00Z ",
            "2008-09-15T155300Z",
            "2008-09-15T15:53:00+24:00",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
        let t = parse_timestamp("2023-05-04T12:00:00-05:00").unwrap();
        assert_eq!(
            t.to_utc(),
            parse_timestamp("2023-05-04T17:00:00.000Z")
                .unwrap()
                .to_utc()
        );
    }

    #[test]
    fn durations() {
        for ok in [
            "PT4H35M59.14S",
            "PT16559.14S",
            "P3Y1M29DT4H35M59.14S",
            "P3Y",
            "P4W",
            "PT1H0M0.1S",
            "P1DT12H36M0.12567S",
            "P0D",
            "PT0,5S",
            "P1.5Y",
        ] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "",
            "P",
            "PT",
            "P1DT",
            "P4W1D",
            "PA1H0M0S",
            "PT1.5H3M",
            "P1M1Y",
            "-P1D",
            "P0003-01-02T00:00:00",
            "PT1H1H",
            "1D",
            "P1D ",
            "PT.5S",
            "P1.S",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn iri_fast_path_never_accepts_what_the_parser_rejects() {
        let alphabet = b"ab:/?#@%[]-._~!$&'()*+,;=09 Hx";
        let prefixes = [
            "",
            "http://",
            "https://ex.com",
            "urn:",
            "mailto:",
            "a:",
            "h:/",
            "x://",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast = 0;
        for n in 0..40_000 {
            let mut s = String::from(prefixes[n % prefixes.len()]);
            let len = (next() % 20) as usize;
            for _ in 0..len {
                s.push(alphabet[(next() % alphabet.len() as u64) as usize] as char);
            }
            if common_ascii_iri(&s) == Some(true) {
                fast += 1;
                assert!(
                    oxiri::Iri::parse(s.as_str()).is_ok(),
                    "fast path accepted {s:?}"
                );
            }
        }
        assert!(fast > 1000, "fast path too narrow: {fast}");
    }

    #[test]
    fn uuids_iris_tags_mail() {
        assert!(is_uuid("AA97B177-9383-4934-8543-0F91A7A02836"));
        assert!(is_uuid("ec531277-b57b-4c15-8d91-d292c5b2b8f7"));
        assert!(!is_uuid("AA97B177-9383-4934-8543-0F91A7A028368"));
        assert!(!is_uuid("MA97B177-9383-4934-8543-0F91A7A02836"));
        assert!(!is_uuid("aa97b1779383493485430f91a7a02836"));
        assert!(is_iri("http://example.com/path/../x"));
        assert!(is_iri("urn:uuid:ec531277-b57b-4c15-8d91-d292c5b2b8f7"));
        assert!(is_iri("http://例え.テスト/パス"));
        for bad in [
            "",
            "should fail",
            "ab=c://should.fail.com",
            "adlnet.gov/expapi/verbs/attended",
            "http://ex ample.com",
        ] {
            assert!(!is_iri(bad), "{bad}");
        }
        for ok in [
            "en",
            "en-US",
            "tlh",
            "cmn",
            "sr-Latn-RS",
            "zh-Hant",
            "es-419",
            "de-DE",
        ] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "something", "a12345", "a12345678", "en_US", "en-"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
        assert!(is_mailto_iri("mailto:xapi@adlnet.gov"));
        assert!(!is_mailto_iri("mailto:should.fail.com"));
        assert!(!is_mailto_iri("http://should.fail.com"));
        assert!(!is_mailto_iri("xapi@adlnet.gov"));
        assert!(!is_mailto_iri("mailto:@adlnet.gov"));
        assert!(is_media_type("text/plain; charset=ascii"));
        assert!(!is_media_type("text"));
        assert!(is_version_of("1.0", "1.0") && is_version_of("1.0.9", "1.0"));
        assert!(
            !is_version_of("1.0.", "1.0")
                && !is_version_of("1.0.x", "1.0")
                && !is_version_of("1.01", "1.0")
        );
    }
}
