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

mod entities;
pub(crate) mod system;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakehouse_flight_ext::v1::{ColumnPii, PiiAlternate};

use entities::{Hints, matches_entity};

/// Version of the detector set, recorded with every finding.
pub(crate) const DETECTOR_VERSION: &str = "lakehouse-pii-1";
/// Values sampled per column.
pub(crate) const SAMPLE_SIZE: usize = 1000;
/// Least match share (after checksums) for a finding.
const THRESHOLD: f64 = 0.5;
/// Least match share for an entity to be listed as an alternate.
const ALTERNATE_THRESHOLD: f64 = 0.05;
const SEED: u64 = 0x5eed_1a4e_0001;

/// Entity types, in the order ties are broken.
pub(crate) const ENTITIES: [&str; 8] = [
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
pub(crate) struct Sampler {
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
    pub(crate) fn new(schema: &arrow::datatypes::Schema) -> Self {
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
    pub(crate) fn observe(&mut self, batch: &RecordBatch) {
        let options = FormatOptions::default();
        for column in &mut self.columns {
            let Some(array) = batch.column_by_name(&column.name) else {
                continue;
            };
            column.observe(array, &options);
        }
    }

    /// The findings for the sampled columns, by column order.
    pub(crate) fn findings(&self) -> Vec<ColumnPii> {
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
pub(crate) fn detect(column: &str, values: &[String], temporal: bool) -> Option<ColumnPii> {
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
