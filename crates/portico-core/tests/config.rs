//! Durations and byte sizes: what is accepted and what is refused.

use std::time::Duration;

use portico_core::config::{ByteSize, ByteSizeError, parse_duration};

#[test]
fn durations_accept_the_documented_forms() {
    let cases = [
        ("250ms", Duration::from_millis(250)),
        ("60s", Duration::from_secs(60)),
        ("15m", Duration::from_secs(15 * 60)),
        ("2h", Duration::from_secs(2 * 3600)),
        ("30d", Duration::from_secs(30 * 86_400)),
        ("1h30m", Duration::from_secs(5400)),
        ("1h 30m", Duration::from_secs(5400)),
        (" 15s ", Duration::from_secs(15)),
        ("0s", Duration::ZERO),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), Ok(want), "{text:?}");
    }
}

#[test]
fn durations_refuse_empty_negative_unitless_and_garbage_with_words() {
    for bad in ["", "   ", "-5s", "15", "abc", "10 parsecs", "1.5.3s", "s"] {
        let err = parse_duration(bad).expect_err(bad);
        assert!(err.len() > 10, "{bad:?} → {err:?} should explain");
    }
    assert!(parse_duration("-5s").unwrap_err().contains("negative"));
}

#[test]
fn byte_sizes_accept_binary_decimal_and_bare_numbers() {
    let cases = [
        ("512", 512),
        ("512B", 512),
        ("64KiB", 64 * 1024),
        ("10MiB", 10 * 1024 * 1024),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("10KB", 10_000),
        ("10MB", 10_000_000),
        ("1GB", 1_000_000_000),
        ("10mib", 10 * 1024 * 1024),
        ("10 MiB", 10 * 1024 * 1024),
        ("0", 0),
    ];
    for (text, want) in cases {
        let size: ByteSize = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(size, ByteSize(want), "{text:?}");
        assert_eq!(size.as_u64(), want);
        assert_eq!(size.as_usize() as u64, want);
    }
}

#[test]
fn byte_sizes_refuse_bad_input() {
    assert_eq!("".parse::<ByteSize>(), Err(ByteSizeError::Empty));
    assert!(matches!(
        "MiB".parse::<ByteSize>(),
        Err(ByteSizeError::NotANumber(_))
    ));
    assert!(matches!(
        "-1MiB".parse::<ByteSize>(),
        Err(ByteSizeError::NotANumber(_))
    ));
    assert!(matches!(
        "1.5MiB".parse::<ByteSize>(),
        Err(ByteSizeError::UnknownUnit(_))
    ));
    assert!(matches!(
        "10 parsecs".parse::<ByteSize>(),
        Err(ByteSizeError::UnknownUnit(_))
    ));
    assert!(matches!(
        "10M".parse::<ByteSize>(),
        Err(ByteSizeError::UnknownUnit(_))
    ));
    assert!(matches!(
        "99999999999TiB".parse::<ByteSize>(),
        Err(ByteSizeError::TooLarge(_))
    ));
    assert!(matches!(
        "99999999999999999999999".parse::<ByteSize>(),
        Err(ByteSizeError::TooLarge(_))
    ));
}

#[test]
fn byte_sizes_display_in_the_largest_exact_unit_and_round_trip() {
    let cases = [
        (10 * 1024 * 1024, "10MiB"),
        (64 * 1024, "64KiB"),
        (10_000_000, "10MB"),
        (512, "512B"),
        (0, "0B"),
        (1 << 30, "1GiB"),
    ];
    for (bytes, text) in cases {
        assert_eq!(ByteSize(bytes).to_string(), text);
        assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)));
    }
}
