use super::*;
use crate::tape::check;
use crate::tape::format::Direction;
use crate::tape::recorder::Sample;
use crate::tape::redact::Redaction;
use bytes::Bytes;
use std::sync::mpsc::sync_channel;

fn settings(dir: &std::path::Path, per_tape: u64, total: u64) -> Settings {
    Settings {
        dir: dir.to_owned(),
        sample: Sample::All,
        redact: Redaction::parse(["/params/arguments/secret"]).unwrap(),
        max_bytes_per_tape: per_tape,
        max_total_bytes: total,
    }
}

fn dropped() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(prometheus::Opts::new("d", "d"), &["reason"]).unwrap()
}

fn line(key: &str, exchange: u64, body: &str) -> Record {
    Record::Line(Box::new(Pending {
        key: key.into(),
        origin: Arc::new(Origin {
            protocol_version: "2025-11-25",
            upstream: "u".into(),
            principal: Some([7; 32]),
            session: true,
        }),
        at: SystemTime::now(),
        dir: Direction::ClientToServer,
        exchange,
        http: Some("POST"),
        status: None,
        headers: Default::default(),
        body: Some(Bytes::from(body.to_owned())),
        sse: None,
    }))
}

fn tapes(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shadowcat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn one_tape_per_key_redacted_and_readable() {
    let dir = temp("writer-keys");
    let (tx, rx) = sync_channel(16);
    let mut w = Writer::new(settings(&dir, 1 << 20, 1 << 30), dropped()).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"secret":"s3cr3t"}}}"#;
    tx.send(line("s:a", 1, body)).unwrap();
    tx.send(line("s:b", 2, body)).unwrap();
    tx.send(Record::End("s:a".into())).unwrap();
    drop(tx);
    w.run(rx);
    let files = tapes(&dir);
    assert_eq!(files.len(), 2);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"));
        let tape = check::read(f).unwrap();
        assert_eq!(tape.header.principal.as_deref(), Some(&*hex(&[7; 32])));
        assert_eq!(tape.lines.len(), 1);
        assert!(!f.to_string_lossy().contains("s:a"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tapes_rotate_by_size_and_the_total_stays_bounded() {
    let dir = temp("writer-bounds");
    let d = dropped();
    let (tx, rx) = sync_channel(1024);
    let mut w = Writer::new(settings(&dir, 4096, 3 * 4096), d.clone()).unwrap();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(900)
    );
    for i in 0..40 {
        tx.send(line("s:a", i, &body)).unwrap();
    }
    drop(tx);
    w.run(rx);
    let files = tapes(&dir);
    let total: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert!(files.len() >= 2, "{files:?}");
    assert!(total <= 3 * 4096, "{total}");
    for f in &files {
        assert!(f.metadata().unwrap().len() <= 4096 + 1024);
        let tape = check::read(f).unwrap();
        assert!(!tape.lines.is_empty());
    }
    let newest = files
        .iter()
        .map(|f| check::read(f).unwrap().header.part)
        .max()
        .unwrap();
    assert!(newest >= 3, "rotated into later parts: {newest}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_line_that_cannot_fit_is_dropped_and_counted() {
    let dir = temp("writer-full");
    let d = dropped();
    let (tx, rx) = sync_channel(16);
    let mut w = Writer::new(settings(&dir, 4096, 4096), d.clone()).unwrap();
    tx.send(line("s:a", 1, &format!("\"{}\"", "y".repeat(5000))))
        .unwrap();
    drop(tx);
    w.run(rx);
    assert_eq!(d.with_label_values(&["over_total"]).get(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tape_paused_while_idle_goes_on_in_its_next_part() {
    let dir = temp("writer-pause");
    let mut w = Writer::new(settings(&dir, 1 << 20, 1 << 30), dropped()).unwrap();
    w.handle(line("s:a", 1, "{}"));
    w.pause(&"s:a".into());
    w.handle(line("s:a", 2, "{}"));
    w.flush();
    let files = tapes(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut parts: Vec<_> = files
        .iter()
        .map(|f| check::read(f).unwrap().header)
        .collect();
    parts.sort_by_key(|h| h.part);
    assert_eq!(parts.iter().map(|h| h.part).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(parts[0].started_unix_ms, parts[1].started_unix_ms);
    let _ = std::fs::remove_dir_all(&dir);
}
