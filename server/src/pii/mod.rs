//! PII detection: which columns hold personal data.
//!
//! Owns: the detectors and the seeded sampler that feeds them. May call: `catalog`
//! (its system table reads the entries) and the leaf `rows`. Invariants:
//! - detection sees a reservoir sample of each column's non-null values, drawn
//!   with a fixed seed, so the same data gives the same report;
//! - `match_share` is the share of *sampled non-null values* that match an
//!   entity (not a share of detections), and `checksum_pass_share` the share of
//!   those matches that pass the entity's checksum (Luhn, IBAN mod-97);
//! - column names alone never make a finding: name hints only raise the
//!   confidence of value evidence (and are required for entities whose values
//!   look like any other value: dates of birth, bare digit phone numbers).

pub mod system;

use std::net::IpAddr;
use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakehouse_flight_ext::v1::{ColumnPii, PiiAlternate};
use regex::Regex;

/// Version of the detector set, recorded with every finding.
pub const DETECTOR_VERSION: &str = "lakehouse-pii-1";
/// Values sampled per column.
pub const SAMPLE_SIZE: usize = 1000;
/// Least match share (after checksums) for a finding.
const THRESHOLD: f64 = 0.5;
/// Least match share for an entity to be listed as an alternate.
const ALTERNATE_THRESHOLD: f64 = 0.05;
const SEED: u64 = 0x5eed_1a4e_0001;

/// Entity types, in the order ties are broken.
pub const ENTITIES: [&str; 8] = [
    "email",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "phone",
    "date_of_birth",
    "person_name",
];

/// Reservoir samples of every text-like column of a stream of batches.
#[derive(Debug)]
pub struct Sampler {
    columns: Vec<ColumnSample>,
}

#[derive(Debug)]
struct ColumnSample {
    name: String,
    /// Values of a temporal type are date-of-birth candidates only.
    temporal: bool,
    seen: u64,
    values: Vec<String>,
    rng: SplitMix,
}

impl Sampler {
    /// A sampler for the columns of `schema` that can hold PII (text, integers, dates).
    pub fn new(schema: &arrow::datatypes::Schema) -> Self {
        let columns = schema
            .fields()
            .iter()
            .filter(|f| sampled_type(f.data_type()).is_some())
            .map(|f| ColumnSample {
                name: f.name().clone(),
                temporal: sampled_type(f.data_type()) == Some(Kind::Temporal),
                seen: 0,
                values: Vec::new(),
                rng: SplitMix(SEED ^ fnv(f.name())),
            })
            .collect();
        Self { columns }
    }

    /// Adds a batch's values to the reservoirs.
    pub fn observe(&mut self, batch: &RecordBatch) {
        let options = FormatOptions::default();
        for column in &mut self.columns {
            let Some(array) = batch.column_by_name(&column.name) else {
                continue;
            };
            column.observe(array, &options);
        }
    }

    /// The findings for the sampled columns, by column order.
    pub fn findings(&self) -> Vec<ColumnPii> {
        self.columns
            .iter()
            .filter_map(|c| detect(&c.name, &c.values, c.temporal))
            .collect()
    }
}

impl ColumnSample {
    fn observe(&mut self, array: &ArrayRef, options: &FormatOptions) {
        let Ok(formatter) = ArrayFormatter::try_new(array.as_ref(), options) else {
            return;
        };
        for row in 0..array.len() {
            if array.is_null(row) {
                continue;
            }
            self.seen += 1;
            let slot = if self.values.len() < SAMPLE_SIZE {
                None
            } else {
                let j = self.rng.below(self.seen);
                if j >= SAMPLE_SIZE as u64 {
                    continue;
                }
                Some(j as usize)
            };
            let value = formatter.value(row).to_string();
            match slot {
                None => self.values.push(value),
                Some(j) => self.values[j] = value,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Temporal,
}

fn sampled_type(data_type: &DataType) -> Option<Kind> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Kind::Text),
        DataType::Int64 | DataType::UInt64 | DataType::Decimal128(..) => Some(Kind::Text),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => Some(Kind::Temporal),
        DataType::Dictionary(_, value) => sampled_type(value),
        _ => None,
    }
}

/// The finding for one column's sample, if any.
pub fn detect(column: &str, values: &[String], temporal: bool) -> Option<ColumnPii> {
    if values.is_empty() {
        return None;
    }
    let hints = Hints::of(column);
    let n = values.len() as f64;
    let mut scores: Vec<Score> = Vec::new();
    for entity in ENTITIES {
        if temporal && entity != "date_of_birth" {
            continue;
        }
        let mut matches = 0usize;
        let mut checksum_ok = 0usize;
        for value in values {
            let value = value.trim();
            if let Some(ok) = matches_entity(entity, value, &hints, temporal) {
                matches += 1;
                checksum_ok += usize::from(ok);
            }
        }
        if matches == 0 {
            continue;
        }
        let match_share = matches as f64 / n;
        let checksum_pass_share = has_checksum(entity).then(|| checksum_ok as f64 / matches as f64);
        let evidence = match_share * checksum_pass_share.unwrap_or(1.0);
        let hinted = hints.for_entity(entity);
        // Confidence grows with the number of values seen: the lower bound of the
        // evidence's 95% interval, so two or three matching values never make 1.0.
        let confidence = (wilson_lower(evidence, n) * if hinted { 1.0 } else { 0.9 }
            + if hinted { 0.05 } else { 0.0 })
        .clamp(0.0, 1.0);
        scores.push(Score {
            entity,
            match_share,
            checksum_pass_share,
            evidence,
            confidence,
        });
    }
    // Best evidence first; ties go to the earlier (more specific) entity.
    scores.sort_by(|a, b| b.evidence.total_cmp(&a.evidence));
    let best = scores.first().filter(|s| s.evidence >= THRESHOLD)?;
    let alternates = scores
        .iter()
        .skip(1)
        .filter(|s| s.match_share >= ALTERNATE_THRESHOLD)
        .map(|s| PiiAlternate {
            entity_type: s.entity.to_string(),
            match_share: round(s.match_share),
        })
        .collect();
    Some(ColumnPii {
        column: column.to_string(),
        entity_type: best.entity.to_string(),
        confidence: round(best.confidence),
        match_share: round(best.match_share),
        checksum_pass_share: best.checksum_pass_share.map(round),
        sample_size: values.len() as u64,
        alternates,
        detector_version: DETECTOR_VERSION.to_string(),
        manual: false,
    })
}

/// The lower bound of the Wilson score interval (95%) of a share `p` seen over `n`
/// values: near `p` for large samples, well below it for a handful.
fn wilson_lower(p: f64, n: f64) -> f64 {
    const Z: f64 = 1.96;
    if n <= 0.0 {
        return 0.0;
    }
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0)
}

struct Score {
    entity: &'static str,
    match_share: f64,
    checksum_pass_share: Option<f64>,
    evidence: f64,
    confidence: f64,
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn has_checksum(entity: &str) -> bool {
    matches!(entity, "credit_card" | "iban")
}

/// What a column's name suggests.
#[derive(Debug, Default)]
struct Hints {
    /// The column names a place (city, country, address...).
    place: bool,
    phone: bool,
    birth: bool,
    name: bool,
    ssn: bool,
    card: bool,
}

impl Hints {
    fn of(column: &str) -> Self {
        let lower = column.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| words.contains(&w);
        let contains = |w: &str| lower.contains(w);
        // Place columns hold capitalised words too ("San Jose", "Santa Clara"): never
        // person names, whatever the words.
        let place = [
            "city", "town", "place", "location", "country", "region", "state", "street", "address",
            "county", "province", "village", "district", "venue",
        ]
        .iter()
        .any(|w| has(w) || lower.ends_with(w));
        Self {
            place,
            phone: contains("phone") || contains("mobile") || has("tel") || contains("fax"),
            birth: contains("birth") || has("dob") || contains("born"),
            name: !place
                && (contains("name")
                    && !contains("username")
                    && !contains("filename")
                    && !has("file")
                    && !has("product")
                    && !has("company")
                    && !has("table")
                    && !has("column")
                    && !has("host"))
                || has("surname")
                || has("customer")
                || has("contact")
                || has("employee"),
            ssn: has("ssn") || contains("social") || has("sin"),
            card: contains("card") || has("pan") || has("cc"),
        }
    }

    fn for_entity(&self, entity: &str) -> bool {
        match entity {
            "phone" => self.phone,
            "date_of_birth" => self.birth,
            "person_name" => self.name,
            "us_ssn" => self.ssn,
            "credit_card" => self.card,
            _ => false,
        }
    }
}

static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // Internationalised addresses too (RFC 6531 local parts, IDN domains and TLDs):
    // letters and digits of any script.
    Regex::new(r"^[\p{L}\p{M}\p{N}._%+\-]+@[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?)*\.(?:\p{L}[\p{L}\p{M}]+|xn--[a-z0-9\-]+)$")
        .ok()
});
static SSN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(\d{3})-(\d{2})-(\d{4})$").ok());
/// North American numbers: (415) 555-0134, 415-555-0134, 415.555.0134, 415 555 0134.
static PHONE_NANP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:\+?1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}$").ok()
});
/// National forms with a trunk 0 and separators: 030 1234567, 020 7946 0958, 06-12345678.
static PHONE_NATIONAL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\(?0\d{1,4}\)?[ .\-/]\d{2,4}(?:[ .\-]?\d{2,4}){1,3}$").ok());
/// E.164, with optional separators: +14155550134, +44 20 7946 0958.
static PHONE_E164: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\+[1-9](?:[ .\-]?\(?\d\)?){7,14}$").ok());
static IBAN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$").ok());
static NAME_TOKEN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // Any script's capitalised words: José, Łukasz, Ørsted, O'Brien, Müller-Lüdenscheidt.
    Regex::new(r"^(?:\p{Lu}[\p{Ll}\p{M}]+(?:[-'’]\p{Lu}?[\p{Ll}\p{M}]+)*|\p{Lu}\.?|(?:van|von|de|der|da|di|le|la|del|bin|al))$")
        .ok()
});
static DATE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?|(\d{1,2})[/.](\d{1,2})[/.](\d{4}))$").ok()
});

/// Whether `re` matches `text`. The patterns are fixed (a unit test proves they
/// compile); one that did not would match nothing rather than crash.
fn is_match(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(text))
}

fn captures<'t>(re: &LazyLock<Option<Regex>>, text: &'t str) -> Option<regex::Captures<'t>> {
    re.as_ref().and_then(|re| re.captures(text))
}

/// `Some(checksum passed)` when `value` looks like `entity`.
fn matches_entity(entity: &str, value: &str, hints: &Hints, temporal: bool) -> Option<bool> {
    let found = match entity {
        "email" => is_match(&EMAIL, value),
        "credit_card" => return card(value),
        "iban" => return iban(value),
        "us_ssn" => ssn(value, hints),
        "ip_address" => value.parse::<IpAddr>().is_ok(),
        "phone" => phone(value, hints),
        "date_of_birth" => hints.birth && birth_date(value, temporal),
        "person_name" => person_name(value, hints),
        _ => false,
    };
    found.then_some(true)
}

fn digits_of(value: &str, separators: &[char]) -> Option<String> {
    let mut digits = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !separators.contains(&c) {
            return None;
        }
    }
    Some(digits)
}

/// 13–19 digits, optionally grouped by spaces or dashes; `Some(luhn ok)`.
fn card(value: &str) -> Option<bool> {
    let digits = digits_of(value, &[' ', '-'])?;
    if !(13..=19).contains(&digits.len()) {
        return None;
    }
    // Card numbers start with 2–6 (Mastercard, Visa, Amex, Discover, ...).
    if !matches!(digits.as_bytes()[0], b'2'..=b'6') {
        return None;
    }
    Some(luhn(&digits))
}

/// The Luhn checksum of a digit string.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// An IBAN, optionally grouped by spaces; `Some(mod-97 ok)`.
fn iban(value: &str) -> Option<bool> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    let compact = compact.to_ascii_uppercase();
    if !is_match(&IBAN, &compact) {
        return None;
    }
    Some(iban_checksum(&compact))
}

/// ISO 13616 mod-97 check of a compact, upper-case IBAN.
pub fn iban_checksum(iban: &str) -> bool {
    let (head, tail) = iban.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// AAA-GG-SSSS with the ranges the SSA never issues excluded (area 000, 666,
/// 900–999; group 00; serial 0000); nine bare digits only under a name hint.
fn ssn(value: &str, hints: &Hints) -> bool {
    let (area, group, serial) = if let Some(c) = captures(&SSN, value) {
        (c[1].to_string(), c[2].to_string(), c[3].to_string())
    } else if hints.ssn && value.len() == 9 && value.bytes().all(|b| b.is_ascii_digit()) {
        (
            value[..3].to_string(),
            value[3..5].to_string(),
            value[5..].to_string(),
        )
    } else {
        return false;
    };
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != "00" && serial != "0000"
}

fn phone(value: &str, hints: &Hints) -> bool {
    if is_match(&PHONE_E164, value)
        || is_match(&PHONE_NANP, value)
        || is_match(&PHONE_NATIONAL, value)
    {
        return true;
    }
    // Bare digits look like any number: only under a name hint.
    hints.phone && value.bytes().all(|b| b.is_ascii_digit()) && (7..=15).contains(&value.len())
}

fn birth_date(value: &str, temporal: bool) -> bool {
    let Some(c) = captures(&DATE, value) else {
        return false;
    };
    let year: i32 = c
        .get(1)
        .or_else(|| c.get(6))
        .and_then(|y| y.as_str().parse().ok())
        .unwrap_or(0);
    let this_year = chrono::Datelike::year(&chrono::Utc::now());
    let _ = temporal;
    (1900..=this_year).contains(&year)
}

fn person_name(value: &str, hints: &Hints) -> bool {
    let tokens: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() || tokens.len() > 4 {
        return false;
    }
    if !tokens.iter().all(|t| is_match(&NAME_TOKEN, t)) {
        return false;
    }
    if hints.name {
        return true;
    }
    if hints.place {
        return false;
    }
    // Without a hint, value evidence must be strong: a known given name and a second token.
    tokens.len() >= 2
        && tokens
            .iter()
            .any(|t| FIRST_NAMES.contains(&fold(t).as_str()))
}

/// A name token lower-cased with its accents dropped (José → jose, Zoë → zoe), the
/// form of [`FIRST_NAMES`].
fn fold(token: &str) -> String {
    token
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ą' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'ę' | 'ě' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' | 'ů' => 'u',
            'ç' | 'ć' | 'č' => 'c',
            'ñ' | 'ń' | 'ň' => 'n',
            'ł' => 'l',
            'ś' | 'š' => 's',
            'ź' | 'ż' | 'ž' => 'z',
            'ý' | 'ÿ' => 'y',
            'ř' => 'r',
            other => other,
        })
        .collect()
}

/// Common given names (several languages), evidence for unhinted name columns.
const FIRST_NAMES: [&str; 122] = [
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "christopher",
    "nancy",
    "daniel",
    "lisa",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "dorothy",
    "kevin",
    "carol",
    "brian",
    "amanda",
    "george",
    "melissa",
    "edward",
    "deborah",
    "ronald",
    "stephanie",
    "timothy",
    "rebecca",
    "jason",
    "sharon",
    "jeffrey",
    "laura",
    "ryan",
    "cynthia",
    "jacob",
    "kathleen",
    "gary",
    "amy",
    "nicholas",
    "shirley",
    "eric",
    "angela",
    "jonathan",
    "helen",
    "stephen",
    "anna",
    "larry",
    "brenda",
    "justin",
    "pamela",
    "scott",
    "nicole",
    "brandon",
    "emma",
    "benjamin",
    "samantha",
    "samuel",
    "katherine",
    "frank",
    "christine",
    "gregory",
    "debra",
    "raymond",
    "rachel",
    "alexander",
    "catherine",
    "patrick",
    "carolyn",
    "jack",
    "janet",
    "dennis",
    "ruth",
    "jerry",
    "maria",
    "tyler",
    "heather",
    "aaron",
    "diane",
    "jose",
    "virginia",
    "henry",
    "julie",
    "adam",
    "joyce",
    "peter",
    "victoria",
    "hans",
    "anne",
    "pierre",
    "marie",
    "giuseppe",
    "sofia",
    "juan",
    "lucia",
    "ahmed",
    "fatima",
];

/// Deterministic pseudo-random numbers (SplitMix64).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
