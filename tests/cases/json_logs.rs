//! `log.format: json`: the real binary writes every stderr line as one JSON object, and the
//! access line carries its fields as JSON fields (issue 20, part 4).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_access_fields() {
    let upstream = MockUpstream::start(|_| {
        Reply::json(serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"content":[]}}))
    })
    .await;
    let dir = std::env::temp_dir().join(format!("shadowcat-jsonlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("json.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: jsonlog\n    url: {}\nlog:\n  format: json\nshutdown:\n  grace_period: 5s\n",
                upstream.url()
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--config"])
            .arg(&conf)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    })
    .await;
    // "shadowcat is up" comes a moment before the listener serves: retry until it answers.
    let url = proxy.url();
    let http = client();
    let started = Instant::now();
    let status = loop {
        let sent = http
            .post(&url)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(call(1, "echo").to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => break resp.status().as_u16(),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("proxy never answered: {e}"),
        }
    };
    assert_eq!(status, 200);
    // SIGTERM drains (the access line is written in the logging phase) and closes stderr.
    proxy.signal("TERM");
    let mut stderr = String::new();
    proxy
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(proxy.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    for line in &lines {
        assert!(line.is_object(), "{line}");
        for key in ["timestamp", "level", "target"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    }
    assert!(
        lines.iter().any(|l| l["message"] == "shadowcat is up"),
        "{stderr}"
    );
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "shadowcat::access")
        .collect();
    assert_eq!(access.len(), 1, "one access line per request: {stderr}");
    let a = access[0];
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["method"], "POST");
    assert_eq!(a["mcp_method"], "tools/call");
    assert_eq!(a["status"], 200, "a number, not text: {a}");
    assert_eq!(a["upstream"], "jsonlog");
    assert_eq!(a["sse_events"], 0);
    assert!(a["ms"].is_u64(), "{a}");
    assert_eq!(a["failure"], "");
    assert_eq!(a["error"], "");
    assert!(
        a.get("message").is_none(),
        "fields, not a formatted message: {a}"
    );
}

/// `--log-format` takes only `text` and `json`, and a bad `log.format` is a config error
/// (exit 64) written as a plain line, not JSON: logging starts after the config is read.
#[test]
fn bad_log_formats_are_refused_readably() {
    let bin = env!("CARGO_BIN_EXE_shadowcat");
    let out = Command::new(bin)
        .args(["reverse", "--upstream", "http://127.0.0.1:1/mcp"])
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "refused by the flag parser");
    assert!(String::from_utf8_lossy(&out.stderr).contains("json"));
    let dir = std::env::temp_dir().join(format!("shadowcat-badlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.yaml");
    std::fs::write(
        &conf,
        "upstreams:\n  - url: http://127.0.0.1:1/mcp\nlog:\n  format: xml\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["reverse", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("config error: log.format:"), "{err}");
}
