//! The JSON access log with tracing on: the real binary, `log.format: json` and `telemetry:`
//! to a real OTLP/HTTP receiver; every line parses as JSON and the access line carries the
//! `trace_id` and `span_id` of the request's server span as exported (issue 20, part 4).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::otlp::{OtlpReceiver, Protocol};
use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

#[tokio::test]
async fn the_json_access_line_carries_the_exported_server_spans_ids() {
    let receiver = OtlpReceiver::start(Protocol::Http).await;
    let upstream = MockUpstream::start(|r| {
        Reply::json(serde_json::json!({"jsonrpc":"2.0","id":r.json()["id"],"result":{}}))
    })
    .await;
    let dir = std::env::temp_dir().join(format!("shadowcat-otel-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("otel.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: otel-log\n    url: {}\nlog:\n  format: json\ntelemetry:\n  otlp: {{endpoint: \"{}\", protocol: http}}\n  service_name: otel-log\nshutdown:\n  grace_period: 5s\n",
                upstream.url(),
                receiver.endpoint()
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
    let spans = receiver
        .wait_for(|s| s.iter().any(|s| s.name() == "POST /mcp"))
        .await;
    let server = spans.iter().find(|s| s.name() == "POST /mcp").unwrap();
    assert_eq!(server.service, "otel-log");

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
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "shadowcat::access")
        .collect();
    assert_eq!(access.len(), 1, "{stderr}");
    assert_eq!(
        access[0]["trace_id"],
        server.trace_id().as_str(),
        "{stderr}"
    );
    assert_eq!(access[0]["span_id"], server.span_id().as_str(), "{stderr}");
    assert_eq!(access[0]["status"], 200);
}
