//! SSE resumability: proxy event ids, the replay buffer, reconnects with `Last-Event-ID`, and
//! upstream failures under a stream.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// A session-ful upstream with an event store. `tools/call` streams `n` progress events
/// (upstream ids `u-1`..`u-n`) `gap` apart, then the result (`u-{n+1}`), or, with `cut`, only
/// the first `cut` events and then a dead connection. GET with `Last-Event-ID: u-k` replays
/// what followed event k.
fn upstream_handler(
    n: usize,
    gap: Duration,
    cut: Option<usize>,
    ids: bool,
) -> impl Fn(&Received) -> Reply + Send + Sync + 'static {
    move |req| {
        let event = |i: usize| {
            let data = if i <= n {
                json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":i}})
            } else {
                json!({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"done"}]}})
            };
            match ids {
                true => format!("id: u-{i}\ndata: {data}\n\n"),
                false => format!("data: {data}\n\n"),
            }
        };
        let body = req.json();
        match (req.method.as_str(), body["method"].as_str()) {
            ("POST", Some("initialize")) => Reply::Full {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("mcp-session-id".into(), "up-1".into()),
                ],
                body: json!({"jsonrpc":"2.0","id":body["id"],"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"m","version":"1"}}}).to_string().into_bytes(),
            },
            ("POST", Some("tools/call")) => {
                let last = cut.unwrap_or(n + 1);
                let chunks = (1..=last).map(|i| (gap, event(i))).collect();
                match cut {
                    Some(_) => Reply::SseCut {
                        headers: vec![],
                        chunks,
                    },
                    None => Reply::Sse {
                        chunks,
                        hold: false,
                    },
                }
            }
            ("GET", _) => {
                let after: usize = req
                    .header("last-event-id")
                    .and_then(|v| v.strip_prefix("u-"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(n + 1);
                let chunks = (after + 1..=n + 1).map(|i| (gap, event(i))).collect();
                Reply::Sse {
                    chunks,
                    hold: false,
                }
            }
            _ => Reply::Full {
                status: 202,
                headers: vec![],
                body: vec![],
            },
        }
    }
}

async fn initialize(client: &reqwest::Client, url: &str) -> String {
    let resp = post(
        client,
        url,
        &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    )
    .await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    sid
}

/// A proxy in front of an upstream running `handler`, and a client with a session.
async fn rig(
    handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    tweak: impl FnOnce(&mut shadowcat::config::Config),
) -> (MockUpstream, Proxy, reqwest::Client, String) {
    let upstream = MockUpstream::start(handler).await;
    let mut config = config_for(&upstream.url());
    tweak(&mut config);
    let proxy = Proxy::start(config).await;
    let client = client();
    let sid = initialize(&client, &proxy.url()).await;
    (upstream, proxy, client, sid)
}

/// The first GET the upstream received.
fn first_get(upstream: &MockUpstream) -> Received {
    upstream
        .received()
        .into_iter()
        .find(|r| r.method == "GET")
        .expect("the upstream got a GET")
}

async fn call_tool(client: &reqwest::Client, url: &str, sid: &str) -> reqwest::Response {
    client
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", sid)
        .body(call(2, "slow").to_string())
        .send()
        .await
        .unwrap()
}

async fn resume(client: &reqwest::Client, url: &str, sid: &str, last: &str) -> reqwest::Response {
    client
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", sid)
        .header("last-event-id", last)
        .send()
        .await
        .unwrap()
}

/// One SSE event as the client saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: Option<String>,
    data: Option<Value>,
    retry: bool,
}

/// Reads events until `max` have data, the body ends, or 10 s pass.
async fn read_up_to(resp: &mut reqwest::Response, max: usize) -> (Vec<Seen>, bool) {
    let mut text = String::new();
    let mut out = Vec::new();
    let mut ended = false;
    while out.iter().filter(|s: &&Seen| s.data.is_some()).count() < max {
        match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => {
                ended = true;
                break;
            }
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut seen = Seen {
                id: None,
                data: None,
                retry: false,
            };
            for line in block.lines() {
                if let Some(id) = line.strip_prefix("id: ") {
                    seen.id = Some(id.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    seen.data = serde_json::from_str(d).ok();
                } else if line.starts_with("retry:") {
                    seen.retry = true;
                }
            }
            if seen.id.is_some() || seen.data.is_some() || seen.retry {
                out.push(seen);
            }
            if out.iter().filter(|s| s.data.is_some()).count() >= max {
                break;
            }
        }
    }
    (out, ended)
}

/// Progress numbers and whether the result came, from what the client saw.
fn progress_and_result(seen: &[Seen]) -> (Vec<i64>, usize) {
    let progress = seen
        .iter()
        .filter_map(|s| s.data.as_ref()?["params"]["progress"].as_i64())
        .collect();
    let results = seen
        .iter()
        .filter(|s| s.data.as_ref().is_some_and(|d| d["id"] == 2))
        .count();
    (progress, results)
}

#[tokio::test]
async fn a_client_that_drops_gets_the_rest_from_the_proxy_buffer() {
    let (upstream, proxy, client, sid) = rig(
        upstream_handler(5, Duration::from_millis(60), None, true),
        |_| {},
    )
    .await;
    let mut first = call_tool(&client, &proxy.url(), &sid).await;
    let (seen, _) = read_up_to(&mut first, 2).await;
    assert_eq!(
        seen.iter()
            .map(|s| s.id.clone().unwrap())
            .collect::<Vec<_>>(),
        ["1-1", "1-2"],
        "the proxy's ids, never the upstream's"
    );
    drop(first);
    // The upstream finishes while nobody listens; the proxy keeps reading it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut second = resume(&client, &proxy.url(), &sid, "1-2").await;
    assert_eq!(second.status(), 200);
    let (rest, _) = read_up_to(&mut second, 4).await;
    let ids: Vec<_> = rest.iter().map(|s| s.id.clone().unwrap()).collect();
    assert_eq!(ids, ["1-3", "1-4", "1-5", "1-6"]);
    let all: Vec<Seen> = seen.into_iter().chain(rest).collect();
    assert_eq!(progress_and_result(&all), (vec![1, 2, 3, 4, 5], 1));
    assert!(
        upstream.received().iter().all(|r| r.method != "GET"),
        "replayed from the proxy's buffer, the upstream was not asked"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, r#"shadowcat_sse_resumes_total{source="buffer"}"#),
        Some(1.0)
    );
    assert!(sample(&metrics, "shadowcat_replay_buffer_bytes").unwrap() > 0.0);
}

#[tokio::test]
async fn random_cuts_over_100_trials_lose_and_repeat_nothing() {
    let n = 6;
    let (_upstream, proxy, client, sid) = rig(
        upstream_handler(n, Duration::from_millis(3), None, true),
        |_| {},
    )
    .await;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for trial in 0..100 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cut = 1 + (seed as usize % (n + 1));
        let mut first = call_tool(&client, &proxy.url(), &sid).await;
        let (mut seen, ended) = read_up_to(&mut first, cut).await;
        drop(first);
        let (_, results) = progress_and_result(&seen);
        if results == 0 && !ended {
            let last = seen
                .iter()
                .rev()
                .find_map(|s| s.id.clone())
                .expect("an id seen");
            let mut again = resume(&client, &proxy.url(), &sid, &last).await;
            let (rest, _) = read_up_to(&mut again, n + 1).await;
            seen.extend(rest);
        }
        let (progress, results) = progress_and_result(&seen);
        assert_eq!(
            progress,
            (1..=n as i64).collect::<Vec<_>>(),
            "trial {trial}, cut {cut}"
        );
        assert_eq!(results, 1, "trial {trial}: the result exactly once");
        let ids: Vec<&String> = seen.iter().filter_map(|s| s.id.as_ref()).collect();
        let mut sorted = ids.clone();
        sorted.dedup();
        assert_eq!(ids, sorted, "trial {trial}: no event twice");
    }
}

#[tokio::test]
async fn an_upstream_that_dies_mid_stream_is_reopened_and_the_client_sees_one_stream() {
    let (upstream, proxy, client, sid) = rig(
        upstream_handler(4, Duration::from_millis(20), Some(2), true),
        |_| {},
    )
    .await;
    let mut first = call_tool(&client, &proxy.url(), &sid).await;
    let (seen, _) = read_up_to(&mut first, 5).await;
    assert_eq!(
        progress_and_result(&seen),
        (vec![1, 2, 3, 4], 1),
        "{seen:?}"
    );
    let ids: Vec<_> = seen.iter().filter_map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        ["1-1", "1-2", "1-3", "1-4", "1-5"],
        "one stream, no gap"
    );
    assert!(
        !seen.iter().any(|s| s.retry),
        "the client was not asked to reconnect"
    );
    let get = first_get(&upstream);
    assert_eq!(
        get.header("last-event-id"),
        Some("u-2"),
        "the upstream's own id"
    );
    assert_eq!(get.header("mcp-session-id"), Some("up-1"));
}

#[tokio::test]
async fn an_upstream_that_cannot_be_reopened_ends_the_stream_for_a_later_resume() {
    let (upstream, proxy, client, sid) = rig(
        upstream_handler(4, Duration::from_millis(20), Some(2), true),
        |_| {},
    )
    .await;
    let mut first = call_tool(&client, &proxy.url(), &sid).await;
    let (seen, _) = read_up_to(&mut first, 1).await;
    // The upstream goes away for good: the reopen attempts fail.
    upstream.stop();
    let (rest, ended) = read_up_to(&mut first, 10).await;
    assert!(ended, "the stream ended cleanly");
    assert!(rest.last().unwrap().retry, "with a retry hint: {rest:?}");
    let all: Vec<Seen> = seen.into_iter().chain(rest).collect();
    assert_eq!(progress_and_result(&all), (vec![1, 2], 0));
}

#[tokio::test]
async fn a_non_resumable_upstream_that_dies_ends_the_stream_with_retry() {
    let (_upstream, proxy, client, sid) = rig(
        upstream_handler(4, Duration::from_millis(20), Some(2), false),
        |_| {},
    )
    .await;
    let mut resp = call_tool(&client, &proxy.url(), &sid).await;
    assert_eq!(resp.status(), 200);
    let (seen, ended) = read_up_to(&mut resp, 10).await;
    assert!(ended);
    assert_eq!(progress_and_result(&seen), (vec![1, 2], 0));
    assert!(seen.last().unwrap().retry, "{seen:?}");
}

/// A tool call whose client leaves after the first of 6 events, with room for 2 in the
/// replay buffer, then resumes from that first event once the rest went past the buffer.
/// `upstream_ids`: whether the upstream numbers its events (so it can be resumed itself).
async fn resume_past_the_buffer(
    upstream_ids: bool,
) -> (MockUpstream, Proxy, Vec<Seen>, reqwest::Response) {
    let (upstream, proxy, client, sid) = rig(
        upstream_handler(6, Duration::from_millis(5), None, upstream_ids),
        |c| c.sse.replay_buffer = 2,
    )
    .await;
    let mut first = call_tool(&client, &proxy.url(), &sid).await;
    let (seen, _) = read_up_to(&mut first, 1).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = resume(&client, &proxy.url(), &sid, seen[0].id.as_deref().unwrap()).await;
    (upstream, proxy, seen, second)
}

#[tokio::test]
async fn an_id_past_the_buffer_is_a_counted_miss_resumed_upstream() {
    let (upstream, proxy, seen, mut second) = resume_past_the_buffer(true).await;
    let (rest, _) = read_up_to(&mut second, 6).await;
    let all: Vec<Seen> = seen.into_iter().chain(rest).collect();
    assert_eq!(progress_and_result(&all), (vec![1, 2, 3, 4, 5, 6], 1));
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, "shadowcat_sse_replay_misses_total"),
        Some(1.0)
    );
    let get = first_get(&upstream);
    assert_eq!(get.header("last-event-id"), Some("u-1"));
}

#[tokio::test]
async fn unknown_ids_get_a_fresh_stream_and_sessionless_streams_keep_upstream_ids() {
    let (upstream, proxy, client, sid) =
        rig(upstream_handler(1, Duration::ZERO, None, true), |_| {}).await;
    let mut resp = resume(&client, &proxy.url(), &sid, "event-from-elsewhere").await;
    let _ = read_up_to(&mut resp, 1).await;
    let get = first_get(&upstream);
    assert_eq!(
        get.header("last-event-id"),
        None,
        "a foreign id is never forwarded"
    );

    // MCP 2026-07-28: no sessions, no ids of the proxy's, nothing buffered.
    let mut resp = client
        .post(proxy.url())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .body(call(2, "slow").to_string())
        .send()
        .await
        .unwrap();
    let (seen, _) = read_up_to(&mut resp, 2).await;
    assert_eq!(seen[0].id.as_deref(), Some("u-1"));
}

#[tokio::test]
async fn the_get_stream_is_numbered_and_replayed_too() {
    let (upstream, proxy, client, sid) = rig(|req| match (req.method.as_str(), req.json()["method"].as_str()) {
        ("POST", Some("initialize")) => Reply::Full {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "up-1".into()),
            ],
            body: br#"{"jsonrpc":"2.0","id":0,"result":{}}"#.to_vec(),
        },
        ("GET", _) => Reply::Sse {
            chunks: (1..=4)
                .map(|i| {
                    let note = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"data":i}});
                    (Duration::from_millis(30), format!("data: {note}\n\n"))
                })
                .collect(),
            hold: true,
        },
        _ => Reply::status(202, ""),
    }, |_| {}).await;
    let mut get = client
        .get(proxy.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    let (seen, _) = read_up_to(&mut get, 1).await;
    assert_eq!(
        seen[0].id.as_deref(),
        Some("1-1"),
        "GET stream events get ids too"
    );
    drop(get);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = resume(&client, &proxy.url(), &sid, "1-1").await;
    let (rest, _) = read_up_to(&mut again, 3).await;
    let data: Vec<i64> = rest
        .iter()
        .filter_map(|s| s.data.as_ref()?["params"]["data"].as_i64())
        .collect();
    assert_eq!(data, [2, 3, 4], "the rest of that stream, from the buffer");
    assert_eq!(
        upstream
            .received()
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        1,
        "the upstream stream was kept, not reopened"
    );
}

/// Regression: a miss that could not be resumed upstream either was counted twice.
#[tokio::test]
async fn regression_a_miss_without_upstream_ids_is_counted_once() {
    let (_upstream, proxy, _, mut second) = resume_past_the_buffer(false).await;
    let _ = read_up_to(&mut second, 1).await;
    let metrics = proxy.metrics().await;
    assert_eq!(
        sample(&metrics, "shadowcat_sse_replay_misses_total"),
        Some(1.0)
    );
}
