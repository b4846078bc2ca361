//! `log.format` and `--log-format`.

use super::*;

#[test]
fn log_format_defaults_to_text_and_takes_json() {
    assert_eq!(from_yaml_str(ONE).unwrap().log.format, LogFormat::Text);
    let c = from_yaml_str(&format!("{ONE}log:\n  format: json\n")).unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    let c = from_yaml_str(&format!("{ONE}log: {{format: text}}\n")).unwrap();
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn log_format_errors_name_the_field_or_flag() {
    let e = err(&format!("{ONE}log: {{format: xml}}\n"));
    assert_eq!(e.field(), "log.format", "{e}");
    assert!(e.to_string().contains("text or json"), "{e}");
    let e = err(&format!("{ONE}log: {{level: debug}}\n"));
    assert_eq!(e.field(), "log.level", "{e}");
    let o = Overrides {
        log_format: Some("yaml".into()),
        ..Overrides::default()
    };
    let e = from_yaml_str_with(Some(ONE), &o).unwrap_err();
    assert_eq!(e.field(), "--log-format", "{e}");
}

#[test]
fn the_flag_replaces_the_key() {
    let o = Overrides {
        log_format: Some("json".into()),
        ..Overrides::default()
    };
    let c = from_yaml_str_with(Some(&format!("{ONE}log: {{format: text}}\n")), &o).unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
}
