//! Rule file reloads: on change (`watch`) and on SIGHUP; a bad file keeps the old rules.

use std::time::Duration;

use serde_json::Value;
use shadowcat::config::{Config, InterceptorsConfig};
use shadowcat::interceptor::RuleSet;

use super::echo_upstream;
use crate::support::proxy_process::ProxyProcess;
use crate::support::*;

#[tokio::test]
async fn rule_file_changes_are_picked_up_and_bad_ones_keep_the_old_rules() {
    let upstream = echo_upstream().await;
    let dir = std::env::temp_dir().join(format!("shadowcat-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    let block = |tool: &str| {
        format!("rules:\n  - name: b\n    match: {{method: tools/call, tool: {tool}}}\n    action: {{block: {{}}}}\n")
    };
    std::fs::write(&file, block("one")).unwrap();
    let config = Config {
        interceptors: InterceptorsConfig {
            rules: RuleSet::load(&file).unwrap(),
            rules_file: Some(file.clone()),
            watch: true,
        },
        ..config_for(&upstream.url())
    };
    let proxy = Proxy::start(config).await;
    let client = client();
    let blocked = |v: Value| v.get("error").is_some();
    let try_call = |tool: &'static str| {
        let client = client.clone();
        let url = proxy.url();
        async move {
            post(&client, &url, &call(1, tool))
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(blocked(try_call("one").await));
    assert!(!blocked(try_call("two").await));

    std::fs::write(&file, block("two")).unwrap();
    let mut swapped = false;
    for _ in 0..100 {
        if blocked(try_call("two").await) {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "the changed file took effect");
    assert!(!blocked(try_call("one").await));

    std::fs::write(&file, "rules:\n  - name: broken\n    action: {nope: 1}\n").unwrap();
    let mut rejected = false;
    for _ in 0..100 {
        let m = proxy.metrics().await;
        if sample(&m, r#"shadowcat_rules_reload_total{result="error"}"#) == Some(1.0) {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejected, "the bad file was seen and refused");
    assert!(
        blocked(try_call("two").await),
        "the previous rules stay in force"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn sighup_reloads_the_rule_file() {
    let upstream = echo_upstream().await;
    let dir = std::env::temp_dir().join(format!("shadowcat-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    let block = |tool: &str| {
        format!("rules:\n  - name: b\n    match: {{method: tools/call, tool: {tool}}}\n    action: {{block: {{}}}}\n")
    };
    std::fs::write(&rules, block("one")).unwrap();
    let conf = dir.join("hup.yaml");
    let mut proxy = ProxyProcess::start(|port| {
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\nadmin: null\nupstreams:\n  - name: mock\n    url: {}\n\
                 interceptors:\n  rules_file: {}\n",
                upstream.url(),
                rules.display()
            ),
        )
        .unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowcat"));
        command
            .args(["reverse", "--config"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    })
    .await;
    let url = proxy.url();
    let client = client();
    let blocked = |tool: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let v: Value = post(&client, &url, &call(1, tool))
                .await
                .json()
                .await
                .unwrap();
            v.get("error").is_some()
        }
    };
    assert!(blocked("one").await);
    // Without `watch`, a changed file waits for SIGHUP.
    std::fs::write(&rules, block("two")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(blocked("one").await, "no reload without SIGHUP or watch");
    proxy.signal("HUP");
    let mut swapped = false;
    for _ in 0..100 {
        if blocked("two").await {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "SIGHUP reloaded the rules");
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "SIGHUP did not end the process"
    );
    drop(proxy);
    std::fs::remove_dir_all(&dir).ok();
}
