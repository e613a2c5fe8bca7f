use super::values::{days, decimal_scaled, integer, text, timestamp_micros};
use super::*;

#[test]
fn parses_decimal_text_exactly() {
    assert_eq!(decimal_scaled(b"-123.450", 3).unwrap(), -123_450);
    assert_eq!(decimal_scaled(b"7", 2).unwrap(), 700);
    assert_eq!(decimal_scaled(b"0.5", 1).unwrap(), 5);
    assert_eq!(
        decimal_scaled(b"99999999999999999999999999999999999999", 0).unwrap(),
        99_999_999_999_999_999_999_999_999_999_999_999_999
    );
    assert!(decimal_scaled(b"1.234", 2).is_err());
    assert!(decimal_scaled(b"1e5", 0).is_err());
    assert!(decimal_scaled(b"999999999999999999999999999999999999999999", 0).is_err());
}

#[test]
fn converts_dates_and_times() {
    assert_eq!(days(1970, 1, 1), Some(0));
    assert_eq!(days(2024, 2, 29), Some(19_782));
    assert_eq!(days(0, 0, 0), None);
    assert_eq!(
        timestamp_micros(&Value::Date(1970, 1, 2, 0, 0, 1, 5)).unwrap(),
        Some(86_401_000_005)
    );
    assert_eq!(
        text(&Value::Time(true, 1, 2, 3, 4, 0)).unwrap(),
        "-26:03:04"
    );
    assert_eq!(
        text(&Value::Time(false, 0, 0, 0, 1, 500)).unwrap(),
        "00:00:01.000500"
    );
    assert_eq!(integer(&Value::Bytes(vec![1, 0])).unwrap(), 256);
}
