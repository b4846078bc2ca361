//! `recording:` and `--record`: off by default, every key, errors that name the field.

use super::*;
use crate::tape::{Redaction, Sample, Settings};

#[test]
fn recording_is_off_by_default_and_every_key_can_be_set() {
    assert_eq!(from_yaml_str(ONE).unwrap().recording, None);
    let c = from_yaml_str(&format!(
        "{ONE}recording:\n  dir: /tmp/tapes\n  sessions: 0.25\n  \
         redact: [X-Api-Key, /params/arguments/password]\n  \
         max_bytes_per_tape: 1MiB\n  max_total_bytes: 10MiB\n"
    ))
    .unwrap();
    assert_eq!(
        c.recording,
        Some(Settings {
            dir: "/tmp/tapes".into(),
            sample: Sample::Ratio(0.25),
            redact: Redaction::parse(["X-Api-Key", "/params/arguments/password"]).unwrap(),
            max_bytes_per_tape: 1 << 20,
            max_total_bytes: 10 << 20,
        })
    );
    let all = from_yaml_str(&format!("{ONE}recording: {{dir: t, sessions: all}}\n")).unwrap();
    assert_eq!(all.recording.unwrap().sample, Sample::All);

    let flag = Overrides {
        record: Some("/var/tapes".into()),
        ..Overrides::default()
    };
    let c = from_yaml_str_with(Some(ONE), &flag).unwrap();
    let r = c.recording.unwrap();
    assert_eq!(r.dir, std::path::PathBuf::from("/var/tapes"));
    assert_eq!(r.sample, Sample::All);
}

#[test]
fn bad_recording_keys_name_their_field() {
    let cases = [
        ("recording: {sessions: all}", "recording.dir"),
        ("recording: {dir: t, sessions: 0}", "recording.sessions"),
        ("recording: {dir: t, sessions: 1.5}", "recording.sessions"),
        ("recording: {dir: t, sessions: some}", "recording.sessions"),
        (
            "recording: {dir: t, redact: [\"bad header\"]}",
            "recording.redact",
        ),
        (
            "recording: {dir: t, max_bytes_per_tape: 1KiB}",
            "recording.max_bytes_per_tape",
        ),
        (
            "recording: {dir: t, max_bytes_per_tape: 1MiB, max_total_bytes: 64KiB}",
            "recording.max_total_bytes",
        ),
        ("recording: {dir: t, speed: 2}", "recording"),
    ];
    for (yaml, field) in cases {
        let err = from_yaml_str(&format!("{ONE}{yaml}\n")).unwrap_err();
        assert!(err.field().starts_with(field), "{yaml}: {err}");
    }
}
