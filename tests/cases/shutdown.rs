//! SIGTERM drains: in-flight SSE streams finish, then the process exits well before the grace
//! period ends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

#[tokio::test]
async fn sigterm_lets_streams_finish_then_exits() {
    let events = ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"];
    let upstream =
        MockUpstream::start(move |_| Reply::sse(&events, Duration::from_millis(300), false)).await;
    let dir = std::env::temp_dir().join(format!("shadowcat-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("drain.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!("listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\nshutdown:\n  grace_period: 20s\n", upstream.url()),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    })
    .await;
    let url = proxy.url();
    let mut resp = post(&client(), &url, &call(1, "x")).await;
    read_events(&mut resp, 1).await;
    let term = Instant::now();
    proxy.signal("TERM");
    let mut rest = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        rest.extend_from_slice(&c);
    }
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "data: 2\n\ndata: 3\n\n",
        "the stream finished"
    );
    let status = loop {
        if let Some(s) = proxy.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            term.elapsed() < Duration::from_secs(15),
            "did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        term.elapsed() < Duration::from_secs(10),
        "exited once drained, not after the 20 s grace period"
    );
}
