//! The defaults of every key: what `conf/shadowcat.yaml` lists, and what a config that omits
//! a key gets.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Config, Health, InterceptorsConfig, Limits, Listener, LoadBalancing, RateLimits, Security,
    Sessions, Shutdown, SseConfig, Timeouts, DEFAULT_LISTEN, DEFAULT_SESSIONS_PER_CLIENT,
};

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![Listener::plain(DEFAULT_LISTEN)],
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            admin_bearer_token: None,
            endpoint: "/mcp".into(),
            threads: None,
            upstreams: Vec::new(),
            obsolete: Vec::new(),
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                request: Duration::from_secs(300),
                idle_stream: Duration::from_secs(3600),
            },
            limits: Limits {
                max_body: 4 << 20,
                max_sse_event: 8 << 20,
                max_headers: 100,
                max_header_bytes: 32 << 10,
                body_read_timeout: Duration::from_secs(30),
                body_total_timeout: Duration::from_secs(60),
                keepalive_idle: Duration::from_secs(60),
                header_read_timeout: Duration::from_secs(10),
                max_concurrent_requests: 20_000,
                max_connections: 20_000,
                max_streams_per_session: 32,
                read_buffer: 16 << 10,
            },
            sse: SseConfig {
                keepalive: Some(Duration::from_secs(15)),
                replay_buffer: 256,
                replay_bytes: 1 << 20,
                replay_total: 256 << 20,
                detached_grace: Duration::from_secs(60),
            },
            shutdown: Shutdown::default(),
            load_balancing: LoadBalancing::RoundRobin,
            health: Health {
                down_for: Duration::from_secs(10),
            },
            sessions: Sessions {
                idle_timeout: Duration::from_secs(30 * 60),
                max: 100_000,
                max_per_principal: DEFAULT_SESSIONS_PER_CLIENT,
                max_per_ip: DEFAULT_SESSIONS_PER_CLIENT,
                max_age: Duration::from_secs(24 * 3600),
                keys: Vec::new(),
            },
            security: Security::loopback(),
            rate_limits: RateLimits::default(),
            auth: None,
            interceptors: InterceptorsConfig::default(),
            cache: Some(crate::cache::Settings {
                max_bytes: 64 << 20,
                rules: Vec::new(),
            }),
            recording: None,
            stdio: Vec::new(),
            log: Default::default(),
            store: Default::default(),

            telemetry: None,
        }
    }
}
