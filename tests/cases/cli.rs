//! The binary: check-config exit codes, a port in use, flags without a file.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shadowcat");

fn conf(name: &str) -> String {
    format!("{}/conf/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_accepts_the_examples() {
    let out = Command::new(BIN)
        .args(["check-config", &conf("shadowcat.yaml")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_rejects_with_one_line_naming_the_field_and_exit_64() {
    let dir = std::env::temp_dir().join(format!("shadowcat-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\ntimeouts:\n  connect: 5x\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("timeouts.connect"), "{stderr}");
    std::fs::write(&file, "listen: 127.0.0.1:1\nbogus: 1\n").unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn port_in_use_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "reverse",
            "--bind",
            &addr,
            "--upstream",
            "http://127.0.0.1:9/mcp",
            "--admin",
            "off",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
}

#[test]
fn help_and_version_work_on_every_command() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["reverse", "--help"],
        &["check-config", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
    }
}

#[test]
fn check_config_rejects_a_bad_rule_file_naming_the_rule() {
    let dir = std::env::temp_dir().join(format!("shadowcat-cli-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: ok\n    match: {method: ping}\n    action: {delay: 1ms}\n  - name: bad-one\n    match: {from: server, method: tools/call}\n    action: {block: {}}\n",
    )
    .unwrap();
    let file = dir.join("main.yaml");
    std::fs::write(
        &file,
        format!(
            "upstreams:\n  - url: http://127.0.0.1:1/mcp\ninterceptors:\n  rules_file: {}\n",
            rules.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("interceptors.rules_file"), "{stderr}");
    assert!(stderr.contains("bad-one"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Regression: `check-config` passed an admin listener on a non-loopback address without a
/// word, though it serves `/metrics` to anyone who can reach it. It now warns on stderr (and
/// still exits 0); with `admin.bearer_token` there is nothing to warn about.
#[test]
fn check_config_warns_about_an_exposed_admin_listener() {
    let dir = std::env::temp_dir().join(format!("shadowcat-cli-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("exposed.yaml");
    let upstreams = "upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n";
    let check = |text: String| {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .env("SHADOWCAT_CLI_ADMIN_TOKEN", "0123456789abcdef-token")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check(format!("{upstreams}admin: 0.0.0.0:9090\n"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("warning: admin: 0.0.0.0:9090 is not a loopback address"),
        "{stderr}"
    );
    assert!(stderr.contains("admin.bearer_token"), "{stderr}");
    let protected = "admin: {addr: 0.0.0.0:9090, bearer_token: '${SHADOWCAT_CLI_ADMIN_TOKEN}'}\n";
    assert_eq!(check(format!("{upstreams}{protected}")), "");
    assert_eq!(check(format!("{upstreams}admin: 127.0.0.1:9090\n")), "");
}
