//! Zero-downtime upgrade with the real binary: a new process started with `--upgrade` takes
//! the running one's listening sockets when it gets SIGQUIT; requests on new connections go
//! on being answered on the same port throughout, none refused, and the old process exits.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

/// Requests the client loop sends at most (one every 10 ms or so: far more than it needs).
const MAX_REQUESTS: usize = 3000;

#[tokio::test]
async fn sigquit_hands_the_sockets_to_the_upgraded_process_and_no_request_fails() {
    let upstream = MockUpstream::start(|req| {
        Reply::json(
            serde_json::json!({"jsonrpc":"2.0","id":req.json()["id"],"result":{"content":[]}}),
        )
    })
    .await;
    let dir = std::env::temp_dir().join(format!("shadowcat-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("upgrade.yaml");
    let sock = dir.join("upgrade.sock");
    let _ = std::fs::remove_file(&sock);
    let command = |conf: &std::path::Path, upgrade: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command.args(["reverse", "--config"]).arg(conf);
        if upgrade {
            command.arg("--upgrade");
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    let old = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\n\
                 shutdown:\n  grace_period: 20s\n  upgrade_sock: {}\n",
                upstream.url(),
                sock.display()
            ),
        )
        .unwrap();
        command(&conf, false)
    })
    .await;
    let url = old.url();

    // Every request on a connection of its own: each one is a new accept.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let (mut ok, mut failed) = (0usize, Vec::new());
            for i in 0..MAX_REQUESTS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sent = client
                    .post(&url)
                    .header("accept", ACCEPT_BOTH)
                    .header("content-type", "application/json")
                    .body(call(i as u64, "x").to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) => match (r.status().as_u16(), r.text().await) {
                        (200, Ok(body)) if body.contains("result") => ok += 1,
                        (status, body) => failed.push(format!("#{i}: {status} {body:?}")),
                    },
                    Err(e) => failed.push(format!("#{i}: {e:?}")),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let new = command(&conf, true)
        .spawn()
        .expect("starting the new shadowcat");
    let mut new = ProxyProcess {
        child: new,
        port: old.port,
    };
    // The new process listens on the upgrade socket (Pingora's bootstrap) before SIGQUIT.
    let started = Instant::now();
    while !sock.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no upgrade socket"
        );
        assert!(
            new.child.try_wait().unwrap().is_none(),
            "the new process exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let quit = Instant::now();
    old.signal("QUIT");
    let mut old = old;
    let status = loop {
        if let Some(s) = old.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            quit.elapsed() < Duration::from_secs(15),
            "the old process did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "old process: {status:?}");
    // Only the new process holds the port now: it keeps answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok >= 50, "requests went on throughout: {ok}");
    assert!(
        new.child.try_wait().unwrap().is_none(),
        "the new process still serves"
    );
    let after = post(&client(), &url, &call(9999, "x")).await;
    assert_eq!(
        after.status(),
        200,
        "answered on the same port by the new process"
    );
    new.signal("TERM");
    let _ = std::fs::remove_dir_all(&dir);
}
