//! `shadowcat-saturate`: a closed-loop HTTP/1.1 generator light enough to saturate one proxy
//! core from one generator core.
//!
//! k6 tops out near 11–12k req/s on the 2-core load machine, below what the proxies do, so a
//! k6 `json_max` measures k6. This opens `--connections` keep-alive connections (hyper's client
//! connection API, one `http1` connection per socket, no pool) on a current-thread runtime;
//! each sends POST requests back to back for `--warmup-s` + `--duration-s`. Only requests
//! started after the warm-up and finished before its end count. Latency of a JSON response
//! is request sent → whole body read; of an SSE response (`content-type: text/event-stream`)
//! request sent → first event (the first body frame holding a blank line), after which the
//! rest of the body is drained before the connection's next request.
//!
//! Every connection first sends `initialize` and calls within the session it gets (as k6's
//! scenarios and stateful MCP clients do); `--no-initialize` skips that.
//!
//! Everything is bounded: each request by the run's hard deadline (warm-up + duration + 10 s),
//! reconnects after an error by a 20 ms pause (a connection the server closes between two
//! exchanges is reopened at once and counted apart, not as an error), recorded latencies by
//! `MAX_SAMPLES` per connection. Prints one JSON line; exits 1 when no request succeeded in
//! the measured window.
//!
//! Usage: shadowcat-saturate --url http://127.0.0.1:8080/mcp [--target NAME] [--connections 64]
//!        [--duration-s 8] [--warmup-s 2] [--header 'x-mock-mode: sse']... [--body JSON]
//!        [--no-initialize]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Latencies kept per connection (µs); past this a connection still counts requests.
const MAX_SAMPLES: usize = 4_000_000;
/// Time past the measured window after which everything is abandoned.
const GRACE: Duration = Duration::from_secs(10);
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(20);
const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;

struct Args {
    addr: SocketAddr,
    authority: String,
    path: String,
    target: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    initialize: bool,
}

fn args() -> Result<Args, String> {
    let (mut url, mut target, mut connections) = (String::new(), String::new(), 64usize);
    let (mut duration_s, mut warmup_s) = (8.0f64, 2.0f64);
    let (mut headers, mut body, mut initialize) = (Vec::new(), CALL.to_owned(), true);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-initialize" {
            initialize = false;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or(format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--url" => url = value.clone(),
            "--target" => target = value.clone(),
            "--connections" => connections = num()? as usize,
            "--duration-s" => duration_s = num()?,
            "--warmup-s" => warmup_s = num()?,
            "--body" => body = value.clone(),
            "--header" => {
                let (k, v) = value
                    .split_once(':')
                    .ok_or(format!("--header {value}: use 'name: value'"))?;
                let k = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|_| format!("--header {value}: bad name"))?;
                let v = HeaderValue::from_str(v.trim())
                    .map_err(|_| format!("--header {value}: bad value"))?;
                headers.push((k, v));
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !(1..=10_000).contains(&connections) {
        return Err("--connections must be 1 to 10000".into());
    }
    if !(0.1..=3600.0).contains(&duration_s) || warmup_s > 600.0 {
        return Err("--duration-s must be 0.1 to 3600, --warmup-s at most 600".into());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://IP:PORT/path")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = authority
        .parse()
        .map_err(|_| format!("{authority}: use an IP:port"))?;
    Ok(Args {
        addr,
        authority: authority.to_owned(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        target: if target.is_empty() {
            url.clone()
        } else {
            target
        },
        connections,
        duration: Duration::from_secs_f64(duration_s),
        warmup: Duration::from_secs_f64(warmup_s),
        headers,
        body: Bytes::from(body),
        initialize,
    })
}

/// The run's three instants: measuring starts, measuring ends, everything is abandoned.
#[derive(Clone, Copy)]
struct Clock {
    measure_from: Instant,
    measure_to: Instant,
    hard: Instant,
}

/// What one connection task saw.
#[derive(Default)]
struct Tally {
    /// Responses in the measured window (any status), and their latencies in µs.
    done: u64,
    /// Responses in the whole run, warm-up included (for CPU per request).
    all: u64,
    samples: Vec<u32>,
    non_2xx: u64,
    /// Connect, handshake, send, read failures and timeouts (any time in the run).
    errors: u64,
    /// Connections the server closed between two exchanges (then reopened).
    reconnects: u64,
    /// Event-stream responses in the window, and those of them that ended with no event.
    sse: u64,
    no_event: u64,
}

enum Outcome {
    /// Status, whether it was an event stream, whether an event came, latency.
    Response(StatusCode, bool, bool, Duration),
    /// The connection is unusable (or the deadline passed): reconnect.
    Failed,
}

fn request(args: &Args, body: Bytes, session: Option<&HeaderValue>) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = args.path.parse().unwrap_or_default();
    let h = req.headers_mut();
    h.insert(
        http::header::HOST,
        HeaderValue::from_str(&args.authority).unwrap_or(HeaderValue::from_static("localhost")),
    );
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    h.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2025-11-25"),
    );
    if let Some(s) = session {
        h.insert("mcp-session-id", s.clone());
    }
    for (k, v) in &args.headers {
        h.insert(k.clone(), v.clone());
    }
    req
}

/// One exchange: send, then read the whole body; an event stream's latency stops at its first
/// blank line. Returns the response head's session id too (for `initialize`).
async fn exchange(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    hard: Instant,
) -> (Outcome, Option<HeaderValue>) {
    let start = Instant::now();
    let Ok(Ok(resp)) = timeout_at(hard, sender.send_request(req)).await else {
        return (Outcome::Failed, None);
    };
    let status = resp.status();
    let session = resp.headers().get("mcp-session-id").cloned();
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut body = resp.into_body();
    let mut first_event: Option<Duration> = None;
    let mut last_byte = 0u8;
    loop {
        match timeout_at(hard, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let (true, None, Some(data)) = (is_sse, first_event, frame.data_ref()) {
                    let blank = data.windows(2).any(|w| w == b"\n\n")
                        || (last_byte == b'\n' && data.first() == Some(&b'\n'));
                    if blank {
                        first_event = Some(start.elapsed());
                    }
                    last_byte = data.last().copied().unwrap_or(last_byte);
                }
            }
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => return (Outcome::Failed, None),
        }
    }
    let latency = first_event.unwrap_or_else(|| start.elapsed());
    (
        Outcome::Response(status, is_sse, first_event.is_some(), latency),
        session,
    )
}

async fn connect(addr: SocketAddr) -> Option<http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

/// One closed-loop connection until the measured window ends.
async fn run_connection(args: &Args, clock: Clock) -> Tally {
    let mut t = Tally::default();
    'reconnect: while Instant::now() < clock.measure_to {
        let Ok(Some(mut sender)) = timeout_at(clock.hard, connect(args.addr)).await else {
            t.errors += 1;
            tokio::time::sleep(PAUSE_AFTER_ERROR).await;
            continue;
        };
        let mut session = None;
        if args.initialize {
            let req = request(args, Bytes::from_static(INITIALIZE.as_bytes()), None);
            match exchange(&mut sender, req, clock.hard).await {
                (Outcome::Response(s, ..), id) if s.is_success() => session = id,
                _ => {
                    t.errors += 1;
                    tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                    continue 'reconnect;
                }
            }
        }
        while Instant::now() < clock.measure_to {
            match timeout_at(clock.hard, sender.ready()).await {
                Ok(Ok(())) => {}
                // The server closed the connection after a complete response (nginx does
                // after `keepalive_requests`): not an error, open another.
                Ok(Err(_)) => {
                    t.reconnects += 1;
                    continue 'reconnect;
                }
                Err(_) => {
                    t.errors += 1;
                    continue 'reconnect;
                }
            }
            let started = Instant::now();
            let req = request(args, args.body.clone(), session.as_ref());
            let (outcome, _) = exchange(&mut sender, req, clock.hard).await;
            let finished = Instant::now();
            let counted = started >= clock.measure_from && finished <= clock.measure_to;
            match outcome {
                Outcome::Failed => {
                    t.errors += 1;
                    tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                    continue 'reconnect;
                }
                Outcome::Response(status, is_sse, event, latency) if counted => {
                    t.all += 1;
                    t.done += 1;
                    if !status.is_success() {
                        t.non_2xx += 1;
                    }
                    if is_sse {
                        t.sse += 1;
                        if !event {
                            t.no_event += 1;
                        }
                    }
                    if t.samples.len() < MAX_SAMPLES {
                        t.samples
                            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                    }
                }
                Outcome::Response(..) => t.all += 1,
            }
        }
    }
    t
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shadowcat-saturate: {e}");
            std::process::exit(64);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shadowcat-saturate: runtime: {e}");
            std::process::exit(70);
        }
    };
    let args: &'static Args = Box::leak(Box::new(args));
    let (total, timed_out) = rt.block_on(async move {
        let now = Instant::now();
        let clock = Clock {
            measure_from: now + args.warmup,
            measure_to: now + args.warmup + args.duration,
            hard: now + args.warmup + args.duration + GRACE,
        };
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(run_connection(args, clock)))
            .collect();
        let mut total = Tally::default();
        let mut timed_out = false;
        for task in tasks {
            match timeout_at(clock.hard, task).await {
                Ok(Ok(t)) => {
                    total.done += t.done;
                    total.all += t.all;
                    total.non_2xx += t.non_2xx;
                    total.errors += t.errors;
                    total.reconnects += t.reconnects;
                    total.sse += t.sse;
                    total.no_event += t.no_event;
                    total.samples.extend(t.samples);
                }
                Ok(Err(_)) => total.errors += 1,
                Err(_) => timed_out = true,
            }
        }
        (total, timed_out)
    });
    let mut d = total.samples;
    d.sort_unstable();
    let pct = |p: f64| {
        let i = ((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1));
        d.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let ok = total.done - total.non_2xx;
    let line = serde_json::json!({
        "target": args.target,
        "connections": args.connections,
        "duration_s": args.duration.as_secs_f64(),
        "requests": total.done,
        "all_requests": total.all,
        "rps": (total.done as f64 / args.duration.as_secs_f64()).round(),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": d.last().map_or(0.0, |&us| f64::from(us) / 1000.0),
        "errors": total.errors,
        "non_2xx": total.non_2xx,
        "reconnects": total.reconnects,
        "sse": total.sse,
        "sse_without_event": total.no_event,
        "timed_out": timed_out,
    });
    println!("{line}");
    // Leave at once: tasks still blocked past the hard deadline are not waited for.
    std::process::exit(if ok == 0 || timed_out { 1 } else { 0 });
}
