use super::entities::{
    DATE, EMAIL, IBAN, NAME_TOKEN, PHONE_E164, PHONE_NANP, PHONE_NATIONAL, SSN, iban_checksum, luhn,
};
use super::*;

fn sample(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

fn entity(column: &str, values: &[&str]) -> Option<String> {
    detect(column, &sample(values), false).map(|f| f.entity_type)
}

#[test]
fn patterns_compile() {
    for re in [
        &EMAIL,
        &SSN,
        &PHONE_NANP,
        &PHONE_NATIONAL,
        &PHONE_E164,
        &IBAN,
        &NAME_TOKEN,
        &DATE,
    ] {
        let re = re.as_ref().expect("every fixed pattern compiles");
        assert!(!re.is_match("\u{0}never\u{0}"));
    }
}

#[test]
fn checksums() {
    assert!(luhn("4111111111111111"));
    assert!(!luhn("4111111111111112"));
    assert!(iban_checksum("GB82WEST12345698765432"));
    assert!(iban_checksum("DE89370400440532013000"));
    assert!(!iban_checksum("DE89370400440532013001"));
}

#[test]
fn detects_each_entity() {
    assert_eq!(
        entity("contact", &["a@b.io", "x.y+z@mail.example.com"]).as_deref(),
        Some("email")
    );
    assert_eq!(
        entity("x", &["4111 1111 1111 1111", "5500-0000-0000-0004"]).as_deref(),
        Some("credit_card")
    );
    assert_eq!(
        entity(
            "x",
            &["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"]
        )
        .as_deref(),
        Some("iban")
    );
    assert_eq!(
        entity("x", &["123-45-6789", "234-56-7890"]).as_deref(),
        Some("us_ssn")
    );
    assert_eq!(
        entity("x", &["10.0.0.1", "2001:db8::1"]).as_deref(),
        Some("ip_address")
    );
    assert_eq!(
        entity("x", &["+14155550134", "(415) 555-0134", "030 1234567"]).as_deref(),
        Some("phone")
    );
    assert_eq!(
        entity("date_of_birth", &["1984-02-29", "1990-12-01"]).as_deref(),
        Some("date_of_birth")
    );
    assert_eq!(
        entity("full_name", &["Ada Lovelace", "Grace Hopper"]).as_deref(),
        Some("person_name")
    );
    assert_eq!(
        entity("who", &["Mary Shelley", "John Keats"]).as_deref(),
        Some("person_name")
    );
}

#[test]
fn internationalised_addresses_and_names() {
    assert_eq!(
        entity(
            "contact",
            &[
                "josé.garcía@correo.es",
                "müller@bücher.de",
                "用户@例子.广告",
                "zoë@example.com"
            ]
        )
        .as_deref(),
        Some("email")
    );
    // A name column: capitalised words of any script.
    assert_eq!(
        entity(
            "customer_name",
            &["José Álvarez", "Łukasz Żak", "Zoë Ørsted", "Mary O'Brien"]
        )
        .as_deref(),
        Some("person_name")
    );
    // No hint: a known given name, accents and all, is the evidence.
    assert_eq!(
        entity("people", &["José Álvarez", "María Müller", "Sofía Ørsted"]).as_deref(),
        Some("person_name")
    );
}

#[test]
fn places_are_not_people() {
    assert_eq!(
        entity("city", &["San Jose", "Santa Clara", "Maria Enzersdorf"]),
        None
    );
}

#[test]
fn confidence_grows_with_the_sample() {
    let few = detect("email", &sample(&["a@example.com", "b@example.com"]), false)
        .expect("two addresses");
    assert!(few.confidence < 0.6, "{}", few.confidence);
    let many: Vec<String> = (0..500).map(|i| format!("user{i}@example.com")).collect();
    let many = detect("email", &many, false).expect("500 addresses");
    assert!(
        // 0.9 is the most an unhinted entity gets; the sample size now counts.
        many.confidence > 0.85 && many.confidence > few.confidence + 0.4,
        "{}",
        many.confidence
    );
}

#[test]
fn ignores_lookalikes() {
    // SSNs the SSA never issues.
    assert_eq!(
        entity("x", &["000-12-3456", "666-12-3456", "912-12-3456"]),
        None
    );
    // Luhn-failing 16-digit numbers are not cards.
    assert_eq!(entity("x", &["4111111111111112", "4111111111111113"]), None);
    // Dates without a birth hint, bare numbers without a phone hint, words.
    assert_eq!(entity("shipped", &["2024-01-02", "2023-05-06"]), None);
    assert_eq!(entity("quantity", &["4155550134", "4155550135"]), None);
    assert_eq!(entity("product_name", &["Blue Widget", "Red Gadget"]), None);
    assert_eq!(entity("comment", &["hello world", "see you soon"]), None);
}

#[test]
fn reports_shares_and_alternates() {
    let finding = detect(
        "card",
        &sample(&["4111111111111111", "4111111111111112", "a@b.io", "n/a"]),
        false,
    );
    // Half the sample looks like a card, half of those pass Luhn: 0.25 evidence < threshold.
    assert!(finding.is_none());
    let finding = detect(
        "card",
        &sample(&[
            "4111111111111111",
            "5500000000000004",
            "340000000000009",
            "a@b.io",
        ]),
        false,
    )
    .unwrap();
    assert_eq!(finding.entity_type, "credit_card");
    assert_eq!(finding.match_share, 0.75);
    assert_eq!(finding.checksum_pass_share, Some(1.0));
    assert_eq!(finding.sample_size, 4);
    assert_eq!(finding.alternates[0].entity_type, "email");
    assert_eq!(finding.alternates[0].match_share, 0.25);
}

#[test]
fn the_sample_is_seeded_and_bounded() {
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![Field::new("email", DataType::Utf8, true)]));
    let run = || {
        let mut sampler = Sampler::new(&schema);
        for chunk in 0..5 {
            let values: Vec<Option<String>> = (0..1000)
                .map(|i| (i % 10 != 0).then(|| format!("user{}@example.com", chunk * 1000 + i)))
                .collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(StringArray::from(values))],
            )
            .unwrap();
            sampler.observe(&batch);
        }
        sampler.columns[0].values.clone()
    };
    let a = run();
    assert_eq!(a.len(), SAMPLE_SIZE);
    assert_eq!(a, run());
    // Drawn from the whole stream, not only its start.
    assert!(a.iter().any(|v| v.starts_with("user4")));
}
