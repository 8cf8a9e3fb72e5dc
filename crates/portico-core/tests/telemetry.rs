//! Log format parsing and the one-time tracing setup (its own test binary: the subscriber is
//! process-global).

use portico_core::telemetry::{LogFormat, TelemetryError, init_tracing};

#[test]
fn log_format_parses_text_and_json_only() {
    assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
    assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert!("yaml".parse::<LogFormat>().is_err());
    assert_eq!(LogFormat::Json.to_string(), "json");
    assert_eq!(LogFormat::default(), LogFormat::Text);
}

#[test]
fn init_tracing_refuses_a_bad_filter_then_installs_once() {
    if std::env::var_os("RUST_LOG").is_none() {
        let err = init_tracing(LogFormat::Text, "info,[{bad").unwrap_err();
        assert!(matches!(err, TelemetryError::InvalidFilter { .. }), "{err}");
    }
    init_tracing(LogFormat::Json, "info").unwrap();
    let again = init_tracing(LogFormat::Text, "info").unwrap_err();
    assert!(matches!(again, TelemetryError::TracingAlreadyInstalled));
}
