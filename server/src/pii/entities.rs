//! What each entity looks like: the value matchers (patterns, checksums, the
//! first-name list) and the column-name hints that tip an ambiguous value.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

/// What a column's name suggests.
#[derive(Debug, Default)]
pub(super) struct Hints {
    /// The column names a place (city, country, address...).
    place: bool,
    phone: bool,
    birth: bool,
    name: bool,
    ssn: bool,
    card: bool,
}

impl Hints {
    pub(super) fn of(column: &str) -> Self {
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

    pub(super) fn for_entity(&self, entity: &str) -> bool {
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

pub(super) static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // Internationalised addresses too (RFC 6531 local parts, IDN domains and TLDs):
    // letters and digits of any script.
    Regex::new(r"^[\p{L}\p{M}\p{N}._%+\-]+@[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?)*\.(?:\p{L}[\p{L}\p{M}]+|xn--[a-z0-9\-]+)$")
        .ok()
});
pub(super) static SSN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(\d{3})-(\d{2})-(\d{4})$").ok());
/// North American numbers: (415) 555-0134, 415-555-0134, 415.555.0134, 415 555 0134.
pub(super) static PHONE_NANP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:\+?1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}$").ok()
});
/// National forms with a trunk 0 and separators: 030 1234567, 020 7946 0958, 06-12345678.
pub(super) static PHONE_NATIONAL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\(?0\d{1,4}\)?[ .\-/]\d{2,4}(?:[ .\-]?\d{2,4}){1,3}$").ok());
/// E.164, with optional separators: +14155550134, +44 20 7946 0958.
pub(super) static PHONE_E164: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\+[1-9](?:[ .\-]?\(?\d\)?){7,14}$").ok());
pub(super) static IBAN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$").ok());
pub(super) static NAME_TOKEN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // Any script's capitalised words: José, Łukasz, Ørsted, O'Brien, Müller-Lüdenscheidt.
    Regex::new(r"^(?:\p{Lu}[\p{Ll}\p{M}]+(?:[-'’]\p{Lu}?[\p{Ll}\p{M}]+)*|\p{Lu}\.?|(?:van|von|de|der|da|di|le|la|del|bin|al))$")
        .ok()
});
pub(super) static DATE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?|(\d{1,2})[/.](\d{1,2})[/.](\d{4}))$").ok()
});

/// Whether `re` matches `text`. The patterns are fixed (a unit test proves they
/// compile); one that did not would match nothing rather than crash.
pub(super) fn is_match(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(text))
}

pub(super) fn captures<'t>(
    re: &LazyLock<Option<Regex>>,
    text: &'t str,
) -> Option<regex::Captures<'t>> {
    re.as_ref().and_then(|re| re.captures(text))
}

/// `Some(checksum passed)` when `value` looks like `entity`.
pub(super) fn matches_entity(
    entity: &str,
    value: &str,
    hints: &Hints,
    temporal: bool,
) -> Option<bool> {
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

pub(super) fn digits_of(value: &str, separators: &[char]) -> Option<String> {
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
pub(super) fn card(value: &str) -> Option<bool> {
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
pub(crate) fn luhn(digits: &str) -> bool {
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
pub(super) fn iban(value: &str) -> Option<bool> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    let compact = compact.to_ascii_uppercase();
    if !is_match(&IBAN, &compact) {
        return None;
    }
    Some(iban_checksum(&compact))
}

/// ISO 13616 mod-97 check of a compact, upper-case IBAN.
pub(crate) fn iban_checksum(iban: &str) -> bool {
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
pub(super) fn ssn(value: &str, hints: &Hints) -> bool {
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

pub(super) fn phone(value: &str, hints: &Hints) -> bool {
    if is_match(&PHONE_E164, value)
        || is_match(&PHONE_NANP, value)
        || is_match(&PHONE_NATIONAL, value)
    {
        return true;
    }
    // Bare digits look like any number: only under a name hint.
    hints.phone && value.bytes().all(|b| b.is_ascii_digit()) && (7..=15).contains(&value.len())
}

pub(super) fn birth_date(value: &str, temporal: bool) -> bool {
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

pub(super) fn person_name(value: &str, hints: &Hints) -> bool {
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
pub(super) fn fold(token: &str) -> String {
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
pub(super) const FIRST_NAMES: [&str; 122] = [
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
