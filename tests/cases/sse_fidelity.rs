//! SSE responses as the upstream meant them and as the proxy reports them: the upstream's
//! `Cache-Control` directives survive, and the access log counts the events each response
//! carried, on every kind of SSE response (sessionless, a session's stream, a GET stream, a
//! replay from the proxy's buffer) and on both upstream paths.

use std::time::Duration;

use serde_json::json;

use crate::support::access_log;
use crate::support::*;

const EVENTS: [&str; 4] = [
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
    ": keepalive\n\n",
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":2}}\n\n",
    "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
];

/// An upstream that issues a session on `initialize` (and needs none otherwise): `tools/call`
/// streams `EVENTS` (3 events, 1 comment) with `Cache-Control: no-cache, no-transform`; GET
/// opens a held stream with `Cache-Control: no-transform` and one event.
async fn upstream() -> MockUpstream {
    MockUpstream::start(|req| {
        let body = req.json();
        match (req.method.as_str(), body["method"].as_str()) {
            ("POST", Some("initialize")) => Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("mcp-session-id".into(), "fidelity-1".into()),
                ],
                body: json!({"jsonrpc":"2.0","id":body["id"],"result":{}})
                    .to_string()
                    .into_bytes(),
            },
            ("POST", _) => Reply::SseWith {
                headers: vec![("cache-control".into(), "no-cache, no-transform".into())],
                chunks: EVENTS
                    .iter()
                    .map(|e| (Duration::ZERO, e.to_string()))
                    .collect(),
                hold: false,
            },
            _ => Reply::SseWith {
                headers: vec![("cache-control".into(), "no-transform".into())],
                chunks: vec![(Duration::ZERO, "data: {}\n\n".into())],
                hold: true,
            },
        }
    })
    .await
}

fn init() -> serde_json::Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

async fn in_session(
    client: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    get: bool,
) -> reqwest::Response {
    let mut req = match get {
        true => client.get(url).header("accept", "text/event-stream"),
        false => client
            .post(url)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(call(1, "slow").to_string()),
    };
    if let Some(sid) = sid {
        req = req
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req.send().await.unwrap()
}

/// A proxy with its upstream named `name` (the access-log lines are found by it).
async fn rig(name: &str) -> (MockUpstream, Proxy, reqwest::Client) {
    let upstream = upstream().await;
    let mut config = config_for(&upstream.url());
    config.upstreams[0].name = name.into();
    (upstream, Proxy::start(config).await, client())
}

/// Regression: `Cache-Control: no-cache, no-transform` from the upstream reached the client as
/// `no-cache`, so compressing intermediaries were free to buffer the stream.
#[tokio::test]
async fn regression_sse_responses_keep_the_upstreams_cache_control() {
    {
        let (_upstream, proxy, client) = rig("mock").await;
        let url = proxy.url();
        let cache_control = |resp: &reqwest::Response| {
            let values: Vec<_> = resp.headers().get_all("cache-control").iter().collect();
            assert_eq!(values.len(), 1, "one Cache-Control line: {values:?}");
            assert_eq!(resp.headers()["x-accel-buffering"], "no");
            values[0].to_str().unwrap().to_owned()
        };

        let resp = in_session(&client, &url, None, false).await;
        assert_eq!(
            cache_control(&resp),
            "no-cache, no-transform",
            "sessionless POST"
        );
        assert_eq!(resp.text().await.unwrap(), EVENTS.concat());

        let mut resp = in_session(&client, &url, None, true).await;
        assert_eq!(
            cache_control(&resp),
            "no-transform, no-cache",
            "sessionless GET"
        );
        read_events(&mut resp, 1).await;
        drop(resp);

        let resp = post(&client, &url, &init()).await;
        let sid = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let resp = in_session(&client, &url, Some(&sid), false).await;
        assert_eq!(
            cache_control(&resp),
            "no-cache, no-transform",
            "session POST stream"
        );
        let text = resp.text().await.unwrap();
        assert!(text.starts_with("id: 1-1\n"), "a resumable stream: {text}");

        let mut resp = in_session(&client, &url, Some(&sid), true).await;
        assert_eq!(
            cache_control(&resp),
            "no-transform, no-cache",
            "session GET stream"
        );
        read_events(&mut resp, 1).await;
        drop(resp);

        // A replay from the proxy's buffer has no upstream head: the proxy's own directive.
        let resp = client
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .header("last-event-id", "1-1")
            .send()
            .await
            .unwrap();
        assert_eq!(cache_control(&resp), "no-cache", "replayed stream");
        assert_eq!(resp.text().await.unwrap().matches("data: ").count(), 2);
    }
}

/// Regression: the access log said `sse_events=0` for every SSE response inside a session
/// (their events flow through the session's stream, not the response's own framer), while
/// `shadowcat_sse_events_total` counted them.
#[tokio::test]
async fn regression_access_log_counts_the_events_of_every_sse_response() {
    access_log::capture();
    {
        let name = "sse-log".to_string();
        let (_upstream, proxy, client) = rig(&name).await;
        let url = proxy.url();
        let events_of = |line: &str| access_log::field(line, "sse_events").to_owned();

        let resp = in_session(&client, &url, None, false).await;
        assert_eq!(resp.text().await.unwrap(), EVENTS.concat());
        let lines = access_log::lines(&name, 1).await;
        assert_eq!(events_of(&lines[0]), "3", "sessionless: {}", lines[0]);

        let resp = post(&client, &url, &init()).await;
        let sid = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = resp.text().await;
        access_log::lines(&name, 2).await;

        let resp = in_session(&client, &url, Some(&sid), false).await;
        let text = resp.text().await.unwrap();
        assert_eq!(text.matches("data: ").count(), 3, "{text}");
        let lines = access_log::lines(&name, 3).await;
        assert_eq!(events_of(&lines[2]), "3", "session stream: {}", lines[2]);

        let resp = client
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .header("last-event-id", "1-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap().matches("data: ").count(), 2);
        let lines = access_log::lines(&name, 4).await;
        assert_eq!(access_log::field(&lines[3], "method"), "GET");
        assert_eq!(events_of(&lines[3]), "2", "replay: {}", lines[3]);

        assert_eq!(
            proxy.settled("shadowcat_sse_events_total", 8.0).await,
            Some(8.0),
            "the metric and the log agree"
        );
        assert_eq!(
            proxy.settled("shadowcat_sse_streams_active", 0.0).await,
            Some(0.0),
            "the replayed stream was counted while active, and ended"
        );
    }
}
