//! Tapes recorded: a session through the proxy (JSON and SSE answers, progress, a deleted
//! session), redaction (a bearer token and a configured argument never reach a tape byte),
//! `tape check` on a truncated tape, the tape tools, a full tape budget. The helpers here
//! serve `tape_replay.rs` too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use shadowcat::tape::{check, Redaction, Sample, Settings};

use crate::support::{config_for, MockUpstream, Proxy, Received, Reply, ACCEPT_BOTH};

const TOKEN: &str = "Bearer tok-NEVER-ON-TAPE-7f3a";
const PASSWORD: &str = "hunter2-NEVER-ON-TAPE";

/// A small MCP server with sessions: JSON answers, an SSE answer with progress for `slow`.
pub async fn mcp_mock() -> MockUpstream {
    MockUpstream::start(|req: &Received| {
        if req.method == "DELETE" {
            return Reply::status(200, "");
        }
        if req.method == "GET" {
            return Reply::status(405, "");
        }
        let body = req.json();
        let id = body["id"].clone();
        match body["method"].as_str() {
            Some("initialize") => Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("mcp-session-id".into(), "upstream-session-1".into()),
                ],
                body: json!({"jsonrpc":"2.0","id":id,"result":{
                    "protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                    "serverInfo":{"name":"mock","version":"1"}}})
                .to_string()
                .into_bytes(),
            },
            Some(m) if m.starts_with("notifications/") => Reply::status(202, ""),
            Some("tools/call") if body["params"]["name"] == "slow" => {
                let token = body["params"]["_meta"]["progressToken"].clone();
                let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
                    "params":{"progressToken":token,"progress":1,"total":2}});
                let progress2 = json!({"jsonrpc":"2.0","method":"notifications/progress",
                    "params":{"progressToken":token,"progress":2,"total":2}});
                let done = json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"slow done"}]}});
                Reply::sse(
                    &[
                        &format!("event: message\ndata: {progress}\n\n"),
                        &format!("event: message\ndata: {progress2}\n\n"),
                        &format!("event: message\ndata: {done}\n\n"),
                    ],
                    Duration::from_millis(30),
                    false,
                )
            }
            Some(_) => Reply::json(json!({"jsonrpc":"2.0","id":id,"result":{
                "echo": body["params"]["arguments"]["text"].clone(),
                "method": body["method"].clone()}})),
            None => Reply::status(400, "{}"),
        }
    })
    .await
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shadowcat-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn recording(dir: &Path) -> Settings {
    Settings {
        dir: dir.to_owned(),
        sample: Sample::All,
        redact: Redaction::parse(["/params/arguments/password"]).unwrap(),
        max_bytes_per_tape: 1 << 20,
        max_total_bytes: 1 << 26,
    }
}

/// Parses a JSON or single-response SSE body into the JSON-RPC messages it carries.
async fn messages(resp: reqwest::Response) -> Vec<Value> {
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    if !sse {
        return serde_json::from_str(&text)
            .map(|v| vec![v])
            .unwrap_or_default();
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// One client session: initialize, a JSON call with a password, a progress call, a
/// DELETE. Returns what the client saw (with the session id left out: it is fresh each time).
pub async fn session_script(url: &str) -> Vec<Value> {
    let client = crate::support::client();
    let send = |body: Value, session: Option<String>| {
        let mut req = client
            .post(url)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("authorization", TOKEN)
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.body(body.to_string()).send()
    };
    let mut seen = Vec::new();
    let init = send(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"t","version":"1"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    seen.extend(messages(init).await);
    let note = send(
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        Some(sid.clone()),
    )
    .await
    .unwrap();
    seen.push(json!({"status": note.status().as_u16()}));
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"login","arguments":{"text":"hi","password":PASSWORD}}});
    seen.extend(messages(send(call, Some(sid.clone())).await.unwrap()).await);
    let slow = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"slow","arguments":{},"_meta":{"progressToken":2}}});
    seen.extend(messages(send(slow, Some(sid.clone())).await.unwrap()).await);
    let gone = client
        .delete(url)
        .header("mcp-session-id", sid)
        .header("authorization", TOKEN)
        .send()
        .await
        .unwrap();
    seen.push(json!({"delete": gone.status().as_u16()}));
    seen
}

/// The tape files in `dir` once they hold `lines` message lines together (bounded wait).
pub async fn tapes_with(dir: &Path, lines: usize) -> Vec<PathBuf> {
    for _ in 0..200 {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        let count: usize = files
            .iter()
            .filter_map(|f| check::read(f).ok())
            .map(|t| t.lines.len())
            .sum();
        if count >= lines {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no tape with {lines} lines in {}", dir.display());
}

#[tokio::test]
async fn a_session_is_recorded_whole_and_redacted() {
    let upstream = mcp_mock().await;
    let dir = temp_dir("record");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    let proxy = Proxy::start(config).await;
    let seen = session_script(&proxy.url()).await;
    assert_eq!(seen[0]["result"]["serverInfo"]["name"], "mock");
    assert_eq!(seen[2]["result"]["echo"], "hi");
    assert_eq!(seen[3]["method"], "notifications/progress");
    assert_eq!(seen[5]["result"]["content"][0]["text"], "slow done");

    // initialize (2 lines), initialized (2), login (2), slow (1 + 3 events + end), DELETE (2).
    let files = tapes_with(&dir, 13).await;
    assert_eq!(files.len(), 1, "one tape for the session: {files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for secret in ["tok-NEVER-ON-TAPE", PASSWORD, "upstream-session-1"] {
        assert!(!text.contains(secret), "{secret} on the tape:\n{text}");
    }
    let tape = check::read(&files[0]).unwrap();
    assert!(tape.header.session);
    assert_eq!(tape.header.protocol_version, "2025-06-18");
    assert_eq!(tape.header.upstream, "mock");
    assert!(tape
        .header
        .principal
        .as_ref()
        .is_some_and(|p| p.len() == 64));
    let first = &tape.lines[0];
    assert_eq!(first.http.as_deref(), Some("POST"));
    assert_eq!(first.headers["authorization"], "[redacted]");
    assert!(first.message.as_ref().unwrap().get().contains("initialize"));
    let sid = tape.lines[1].headers["mcp-session-id"].clone();
    assert!(sid.len() > 20, "the proxy's own id: {sid}");
    let events: Vec<_> = tape.lines.iter().filter_map(|l| l.sse.as_ref()).collect();
    assert_eq!(events.iter().map(|e| e.n).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(events[3].end);
    assert!(events[0].id.is_some(), "the proxy's event ids are kept");
    let login = tape
        .lines
        .iter()
        .find_map(|l| l.message.as_ref().filter(|m| m.get().contains("login")))
        .unwrap();
    assert!(login.get().contains("[redacted]"));
    let metrics = proxy.metrics().await;
    for reason in ["queue_full", "write_error", "over_total"] {
        let series = format!("shadowcat_tape_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(
            crate::support::sample(&metrics, &series),
            Some(0.0),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_truncated_tape_is_caught_with_its_line() {
    let upstream = mcp_mock().await;
    let dir = temp_dir("truncated");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    let proxy = Proxy::start(config).await;
    session_script(&proxy.url()).await;
    let files = tapes_with(&dir, 13).await;
    let bytes = std::fs::read(&files[0]).unwrap();
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let broken = check::read(&cut).unwrap_err();
    assert_eq!(broken.line, lines, "{broken}");

    let bin = env!("CARGO_BIN_EXE_shadowcat");
    let out = std::process::Command::new(bin)
        .args(["tape", "check"])
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("line {lines}")), "{stderr}");
    let ok = std::process::Command::new(bin)
        .args(["tape", "check"])
        .arg(&files[0])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn tape_tools_list_show_and_export_har() {
    let upstream = mcp_mock().await;
    let dir = temp_dir("tools");
    let mut config = config_for(&upstream.url());
    config.recording = Some(recording(&dir));
    let proxy = Proxy::start(config).await;
    session_script(&proxy.url()).await;
    let files = tapes_with(&dir, 13).await;
    let bin = env!("CARGO_BIN_EXE_shadowcat");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["tape".as_ref(), "list".as_ref(), dir.as_os_str()]);
    assert!(
        list.contains("2025-06-18") && list.contains("upstream=mock"),
        "{list}"
    );
    let show = run(&["tape".as_ref(), "show".as_ref(), files[0].as_os_str()]);
    for expected in [
        "POST",
        "initialize id=0",
        "tools/call slow id=2",
        "notifications/progress",
        "SSE end (3 events)",
        "DELETE",
    ] {
        assert!(show.contains(expected), "{expected}:\n{show}");
    }
    let har = run(&[
        "tape".as_ref(),
        "export".as_ref(),
        files[0].as_os_str(),
        "--format".as_ref(),
        "har".as_ref(),
    ]);
    let har: Value = serde_json::from_str(&har).unwrap();
    assert_eq!(shadowcat::tape::har::missing_required(&har), None);
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), 5);
    assert!(!har.to_string().contains("tok-NEVER-ON-TAPE"));
}

/// A tape budget that is full (here smaller than one session's tape, as a disk that fills up
/// would be) drops tape lines, counted, and every request is still answered.
#[tokio::test]
async fn a_full_tape_budget_drops_lines_never_requests() {
    let upstream = mcp_mock().await;
    let dir = temp_dir("full");
    let mut config = config_for(&upstream.url());
    let mut settings = recording(&dir);
    settings.max_bytes_per_tape = 4096;
    settings.max_total_bytes = 2048;
    config.recording = Some(settings);
    let proxy = Proxy::start(config).await;
    for _ in 0..3 {
        let seen = session_script(&proxy.url()).await;
        assert_eq!(seen[5]["result"]["content"][0]["text"], "slow done");
        assert_eq!(seen.last().unwrap()["delete"], 200);
    }
    let dropped = proxy
        .settled_when("shadowcat_tape_dropped_total{reason=\"over_total\"}", |v| {
            v > 0.0
        })
        .await;
    assert!(dropped.is_some_and(|v| v > 0.0), "{dropped:?}");
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 2048, "{total}");
}
