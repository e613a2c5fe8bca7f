use super::*;

fn numeric(negative: bool, weight: i16, dscale: u16, digits: &[i16]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend((digits.len() as i16).to_be_bytes());
    raw.extend(weight.to_be_bytes());
    raw.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    raw.extend(dscale.to_be_bytes());
    for d in digits {
        raw.extend(d.to_be_bytes());
    }
    raw
}

#[test]
fn decodes_numerics_exactly() {
    // 12345.678 = 1|2345.6780
    let raw = numeric(false, 1, 3, &[1, 2345, 6780]);
    assert_eq!(numeric_text(&raw).unwrap(), "12345.678");
    assert_eq!(numeric_scaled(&raw, 3).unwrap(), 12_345_678);
    let raw = numeric(true, -1, 4, &[5]); // -0.0005
    assert_eq!(numeric_text(&raw).unwrap(), "-0.0005");
    assert_eq!(numeric_scaled(&raw, 4).unwrap(), -5);
    let raw = numeric(false, 0, 0, &[]); // 0
    assert_eq!(numeric_text(&raw).unwrap(), "0");
    assert_eq!(
        numeric_text(&numeric(false, 2, 0, &[7, 0, 1])).unwrap(),
        "700000001"
    );
}

#[test]
fn maps_types() {
    assert_eq!(
        arrow_type(&Type::NUMERIC, Some(((10 << 16) | 2) + 4)),
        Some(DataType::Decimal128(10, 2))
    );
    assert_eq!(arrow_type(&Type::NUMERIC, None), Some(DataType::Utf8));
    assert!(matches!(
        arrow_type(&Type::INT4_ARRAY, None),
        Some(DataType::List(_))
    ));
    assert_eq!(arrow_type(&Type::POINT, None), None);
    assert_eq!(time_text(3_723_000_001), "01:02:03.000001");
}
