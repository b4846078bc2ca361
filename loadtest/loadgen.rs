//! `shadowcat-loadgen`: holds many SSE streams open and measures per-event delivery delay.
//!
//! k6 reads whole responses, so it cannot time events inside a stream. This opens `--streams`
//! GET streams to `--url` (HTTP/1.1, one connection each), asks the mock upstream for one
//! event every `--spacing-ms` stamped with its send time, and for `--seconds` records
//! receive time minus send time for every event (same machine, same clock). Events sent in
//! the first `--warmup-s` seconds are not recorded: while thousands of streams open, the delay
//! measures the proxy's accept and `initialize` work, not delivery on an open stream. Prints
//! one JSON line: streams opened, when the last one opened (ms from the start, to check the
//! warm-up covers it), events recorded, delay percentiles in µs.
//!
//! Usage: shadowcat-loadgen --url http://127.0.0.1:8080/mcp --streams 1000 --seconds 12 --spacing-ms 1000 [--warmup-s 4]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    streams: usize,
    seconds: u64,
    spacing_ms: u64,
    warmup_s: u64,
}

fn args() -> Result<Args, String> {
    let mut url = String::new();
    let (mut streams, mut seconds, mut spacing_ms, mut warmup_s) = (100, 10, 1000, 0);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--url" => url = value.clone(),
            "--streams" => streams = num()? as usize,
            "--seconds" => seconds = num()?,
            "--spacing-ms" => spacing_ms = num()?,
            "--warmup-s" => warmup_s = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if warmup_s >= seconds {
        return Err("--warmup-s must be below --seconds".into());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://host:port/path")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = host
        .parse()
        .map_err(|_| format!("{host}: use an IP:port"))?;
    Ok(Args {
        addr,
        host: host.to_owned(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        streams,
        seconds,
        spacing_ms,
        warmup_s,
    })
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Sends `initialize`, reads the whole answer; `Some(session id if any)` on 200.
async fn initialize(s: &mut TcpStream, args: &Args) -> Option<Option<String>> {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    let post = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{init}",
        args.path,
        args.host,
        init.len()
    );
    s.write_all(post.as_bytes()).await.ok()?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        resp.extend_from_slice(&buf[..n]);
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&resp[..head_end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let value = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = value("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while resp.len() < head_end + len {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    Some(value("mcp-session-id"))
}

/// What the streams of one run share.
struct Tally {
    /// Wall-clock µs at the start, and from which on an event's send stamp is recorded.
    start_us: u128,
    record_from_us: u128,
    delays: Mutex<Vec<u64>>,
    opened: AtomicUsize,
    /// µs from `start_us` to the latest stream's first response byte.
    last_open_us: AtomicU64,
}

/// Reads one stream until `deadline`, pushing the delay (µs) of each event sent from
/// `tally.record_from_us` on.
async fn stream(args: Arc<Args>, tally: Arc<Tally>, deadline: tokio::time::Instant) {
    let Ok(mut s) = TcpStream::connect(args.addr).await else {
        return;
    };
    // Like a real client: initialize, then open the stream in that session (if one was issued).
    let Some(session) = initialize(&mut s, &args).await else {
        return;
    };
    let session = session
        .map(|id| format!("mcp-session-id: {id}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\nx-mock-spacing-ms: {}\r\n{session}\r\n",
        args.path, args.host, args.spacing_ms
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 8192];
    let mut carry: Vec<u8> = Vec::new();
    let mut counted = false;
    let mut local = Vec::new();
    const KEY: &[u8] = b"\"sent_us\":";
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        let at = now_us();
        if !counted {
            if !buf[..n].starts_with(b"HTTP/1.1 200") {
                return; // refused: not an open stream
            }
            counted = true;
            tally.opened.fetch_add(1, Ordering::Relaxed);
            let since_start = at.saturating_sub(tally.start_us) as u64;
            tally.last_open_us.fetch_max(since_start, Ordering::Relaxed);
        }
        carry.extend_from_slice(&buf[..n]);
        let mut pos = 0;
        while let Some(i) = carry[pos..].windows(KEY.len()).position(|w| w == KEY) {
            let start = pos + i + KEY.len();
            let end = start
                + carry[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            if end == carry.len() {
                break; // the number may continue in the next read
            }
            if let Some(sent) = std::str::from_utf8(&carry[start..end])
                .ok()
                .and_then(|t| t.parse::<u128>().ok())
            {
                if sent >= tally.record_from_us {
                    local.push(at.saturating_sub(sent) as u64);
                }
            }
            pos = end;
        }
        // Keep at most the last 64 unread bytes (a key and its number split across reads).
        let keep_from = pos.max(carry.len().saturating_sub(64));
        carry.drain(..keep_from);
    }
    tally.delays.lock().map(|mut d| d.extend(local)).ok();
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("shadowcat-loadgen: {e}");
            std::process::exit(64);
        }
    };
    let start_us = now_us();
    let tally = Arc::new(Tally {
        start_us,
        record_from_us: start_us + u128::from(args.warmup_s) * 1_000_000,
        delays: Mutex::new(Vec::new()),
        opened: AtomicUsize::new(0),
        last_open_us: AtomicU64::new(0),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        tasks.push(tokio::spawn(stream(args.clone(), tally.clone(), deadline)));
        // Open gently: a connection storm would measure the accept queue, not delivery.
        tokio::task::yield_now().await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut d = tally.delays.lock().map(|d| d.clone()).unwrap_or_default();
    d.sort_unstable();
    let pct = |p: f64| {
        d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"streams\":{},\"last_open_ms\":{},\"events\":{},\"p50_us\":{},\"p95_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        tally.opened.load(Ordering::Relaxed),
        tally.last_open_us.load(Ordering::Relaxed) / 1000,
        d.len(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        d.last().copied().unwrap_or(0)
    );
}
