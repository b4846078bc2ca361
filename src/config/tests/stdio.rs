//! Stdio upstreams (`command`): url XOR command, the program looked up, `mode`, the flag.

use super::*;

fn stdio(extra: &str) -> Result<Config, ConfigError> {
    from_yaml_str(&format!(
        "upstreams:\n  - name: mem\n    command: [sh, -c, 'exec cat']\n{extra}"
    ))
}

#[test]
fn stdio_upstream_takes_a_command_env_cwd_and_max_children() {
    std::env::set_var("SHADOWCAT_TEST_STDIO_TOKEN", "s3cret");
    let c = stdio(
        "    env: {A: b, TOKEN: '${SHADOWCAT_TEST_STDIO_TOKEN}'}\n    cwd: /\n    max_children: 7\n",
    )
    .unwrap();
    let s = &c.stdio[0];
    assert_eq!(s.name, "mem");
    assert!(
        s.program.is_absolute() && s.program.ends_with("sh"),
        "{s:?}"
    );
    assert_eq!(s.args, ["-c", "exec cat"]);
    assert_eq!(
        s.env,
        [("A".into(), "b".into()), ("TOKEN".into(), "s3cret".into())]
    );
    assert_eq!(s.cwd.as_deref(), Some(std::path::Path::new("/")));
    assert_eq!((s.mode, s.max_children), (StdioMode::PerSession, 7));
    assert_eq!(
        c.upstreams[0].target,
        UpstreamTarget::Stdio { bridge: None },
        "a stdio upstream is its own kind, with no URL until its bridge is bound"
    );
    assert_eq!(c.upstreams[0].url(), None);
    assert_eq!(c.upstreams[0].describe(), "stdio:mem");
    assert_eq!(
        stdio("").unwrap().stdio[0].max_children,
        DEFAULT_MAX_CHILDREN
    );
    let plain = &stdio("").unwrap().stdio[0];
    assert_eq!(
        (plain.pool_size, plain.spawn_rate),
        (DEFAULT_POOL_SIZE, None)
    );
}

#[test]
fn stdio_shared_mode_takes_a_pool_size_and_a_spawn_rate() {
    let c = stdio(
        "    mode: shared\n    pool_size: 3\n    spawn_rate: {rate: 5, per: 1s, burst: 10}\n",
    )
    .unwrap();
    let s = &c.stdio[0];
    assert_eq!((s.mode, s.pool_size), (StdioMode::Shared, 3));
    let rate = s.spawn_rate.unwrap();
    assert_eq!(
        (rate.rate, rate.per, rate.burst),
        (5, std::time::Duration::from_secs(1), 10)
    );
}

#[test]
fn stdio_upstream_errors_name_the_field() {
    let cases = [
        ("upstreams:\n  - name: x\n", "upstreams[0]", "needs `url`"),
        (
            "upstreams:\n  - url: http://127.0.0.1:1/mcp\n    command: [sh]\n",
            "upstreams[0]",
            "not both",
        ),
        (
            "upstreams:\n  - command: []\n",
            "upstreams[0].command",
            "empty",
        ),
        (
            "upstreams:\n  - command: [no-such-program-shadowcat]\n",
            "upstreams[0].command",
            "not found on PATH",
        ),
        (
            "upstreams:\n  - command: [/no/such/file]\n",
            "upstreams[0].command",
            "does not exist",
        ),
        (
            "upstreams:\n  - command: [/]\n",
            "upstreams[0].command",
            "is not a file",
        ),
        (
            "upstreams:\n  - command: [sh]\n    mode: shared\n    max_children: 2\n    pool_size: 3\n",
            "upstreams[0].pool_size",
            "more than max_children",
        ),
        (
            "upstreams:\n  - command: [sh]\n    pool_size: 0\n",
            "upstreams[0].pool_size",
            "more than 0",
        ),
        (
            "upstreams:\n  - command: [sh]\n    spawn_rate: {rate: 0}\n",
            "upstreams[0].spawn_rate.rate",
            "more than 0",
        ),
        (
            "upstreams:\n  - url: http://127.0.0.1:1/mcp\n    pool_size: 2\n",
            "upstreams[0].pool_size",
            "only for a stdio upstream",
        ),
        (
            "upstreams:\n  - command: [sh]\n    mode: pool\n",
            "upstreams[0].mode",
            "unknown",
        ),
        (
            "upstreams:\n  - command: [sh]\n    cwd: /no/such/dir\n",
            "upstreams[0].cwd",
            "",
        ),
        (
            "upstreams:\n  - command: [sh]\n    max_children: 0\n",
            "upstreams[0].max_children",
            "more than 0",
        ),
        (
            "upstreams:\n  - command: [sh]\n    http2: always\n",
            "upstreams[0].http2",
            "only for an HTTP upstream",
        ),
        (
            "upstreams:\n  - url: http://127.0.0.1:1/mcp\n    env: {A: b}\n",
            "upstreams[0].env",
            "only for a stdio upstream",
        ),
        (
            "upstreams:\n  - command: [sh]\n    env: {A: '${SHADOWCAT_NO_SUCH_VAR}'}\n",
            "upstreams[0].env.A",
            "not set",
        ),
    ];
    for (yaml, field, message) in cases {
        let e = from_yaml_str(yaml).unwrap_err();
        assert_eq!(e.field(), field, "{yaml}: {e}");
        assert!(e.to_string().contains(message), "{yaml}: {e}");
    }
}

#[test]
fn upstream_command_flag_replaces_the_list() {
    let o = Overrides {
        upstream_command: Some(vec!["sh".into(), "-c".into(), "cat".into()]),
        ..Overrides::default()
    };
    let c = from_yaml_str_with(Some(ONE), &o).unwrap();
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].name, "default");
    assert_eq!(c.stdio[0].args, ["-c", "cat"]);
    let missing = Overrides {
        upstream_command: Some(vec!["no-such-program-shadowcat".into()]),
        ..Overrides::default()
    };
    let e = from_yaml_str_with(None, &missing).unwrap_err();
    assert_eq!(e.field(), "--upstream-command");
}
