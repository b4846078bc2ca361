//! The config file as written: serde structs, every key optional, unknown keys rejected.
//! Values stay text here; `validate` turns them into typed values with field-path errors.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub listeners: Option<Vec<RawListener>>,
    /// `Some(None)` is an explicit `admin: null` (disabled).
    #[serde(default, deserialize_with = "explicit_null")]
    pub admin: Option<Option<RawAdmin>>,
    pub endpoint: Option<String>,
    pub threads: Option<u32>,
    /// Obsolete (every request takes the one upstream exchange): accepted, warned about.
    pub direct_exchange: Option<bool>,
    pub upstreams: Option<Vec<RawUpstream>>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub sse: RawSse,
    #[serde(default)]
    pub shutdown: RawShutdown,
    pub load_balancing: Option<String>,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    pub auth: Option<RawAuth>,
    pub interceptors: Option<RawInterceptors>,
    pub cache: Option<RawCache>,
    pub recording: Option<RawRecording>,
    #[serde(default)]
    pub log: RawLog,
    pub store: Option<RawStore>,

    pub telemetry: Option<RawTelemetry>,
}

/// `telemetry:` — OpenTelemetry traces (see `validate::telemetry`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp: Option<RawOtlp>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
    pub propagate_in_meta: Option<bool>,
}

/// `telemetry.otlp:` — the collector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// `log:` — how log lines are written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (the default) or `json`.
    pub format: Option<String>,
}

/// `cache:` (see `validate::cache`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub max_bytes: Option<Scalar>,
    pub rules: Option<Vec<RawCacheRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheRule {
    pub method: Option<String>,
    pub upstream: Option<String>,
    pub ttl: Option<Scalar>,
    pub scope: Option<String>,
}

/// `recording:` (see `validate::recording`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecording {
    pub dir: Option<String>,
    /// `all`, or a share of sessions between 0 and 1.
    pub sessions: Option<serde_yaml::Value>,
    pub redact: Option<Vec<String>>,
    pub max_bytes_per_tape: Option<Scalar>,
    pub max_total_bytes: Option<Scalar>,
}

/// `admin:` — an address (the original form), or `{addr, bearer_token}`.
#[derive(Debug)]
pub enum RawAdmin {
    Addr(String),
    Full(RawAdminFull),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminFull {
    pub addr: Option<String>,
    /// `${VAR}` is read from the environment.
    pub bearer_token: Option<String>,
}

impl<'de> Deserialize<'de> for RawAdmin {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(AdminVisitor)
    }
}

struct AdminVisitor;

impl<'de> serde::de::Visitor<'de> for AdminVisitor {
    type Value = RawAdmin;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an address like 127.0.0.1:9090, or {addr, bearer_token}")
    }
    fn visit_str<E>(self, s: &str) -> Result<RawAdmin, E> {
        Ok(RawAdmin::Addr(s.to_owned()))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawAdmin, A::Error> {
        let de = serde::de::value::MapAccessDeserializer::new(map);
        RawAdminFull::deserialize(de).map(RawAdmin::Full)
    }
}

/// `interceptors:` — a rule file (hot-reloaded) or inline rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInterceptors {
    pub rules_file: Option<String>,
    #[serde(default)]
    pub watch: bool,
    /// The rule list itself, validated by the rules engine.
    pub rules: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub resource: String,
    pub issuer: String,
    pub authorization_servers: Option<Vec<String>>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
    pub refresh: Option<Scalar>,
    pub algorithms: Option<Vec<String>>,
    pub leeway: Option<Scalar>,
    pub scopes_supported: Option<Vec<String>>,
    pub required_scopes: Option<Vec<RawScopeRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScopeRule {
    pub method: Option<String>,
    pub tool: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub per_principal: Option<RawRate>,
    pub per_ip: Option<RawRate>,
    pub per_session: Option<RawRate>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub rate: u32,
    pub per: Option<Scalar>,
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub hsts: Option<RawHsts>,
}

/// `security.hsts:` — `Strict-Transport-Security` on responses over TLS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHsts {
    pub max_age: Option<Scalar>,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

/// `listeners[]` — an address, plain or TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub addr: String,
    pub tls: Option<RawTls>,
}

/// `listeners[].tls` — certificates (a default pair and/or pairs chosen by SNI) and client
/// certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub certificates: Option<Vec<RawSniCert>>,
    pub client_ca_file: Option<String>,
    pub client_auth: Option<String>,
    pub handshake_timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    pub names: Vec<String>,
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Option<String>,
    /// An HTTP upstream's MCP endpoint; exactly one of `url` and `command`.
    pub url: Option<String>,
    /// A stdio upstream: `[program, args...]`, run by the proxy (see `validate::stdio`).
    pub command: Option<Vec<String>>,
    /// Environment of a stdio upstream's children (plus `PATH`); `${VAR}` is read at start-up.
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Working directory of a stdio upstream's children.
    pub cwd: Option<String>,
    /// `per_session` (the default) or `shared`.
    pub mode: Option<String>,
    /// Children of a stdio upstream alive at once.
    pub max_children: Option<u32>,
    /// Children of a stdio upstream's shared pool.
    pub pool_size: Option<u32>,
    /// Child starts a stdio upstream may make (`{rate, per, burst}`).
    pub spawn_rate: Option<RawRate>,
    pub weight: Option<u32>,
    #[serde(default)]
    pub forward_authorization: bool,
    /// Header name → value; `${VAR}` in a value is read from the environment.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    pub tls: Option<RawUpstreamTls>,
    /// `auto`, `always` or `never`.
    pub http2: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub server_name: Option<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Scalar>,
    pub request: Option<Scalar>,
    pub idle_stream: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body: Option<Scalar>,
    pub max_sse_event: Option<Scalar>,
    pub max_headers: Option<u32>,
    pub max_header_bytes: Option<Scalar>,
    pub body_read_timeout: Option<Scalar>,
    pub body_total_timeout: Option<Scalar>,
    pub keepalive_idle: Option<Scalar>,
    pub header_read_timeout: Option<Scalar>,
    pub max_concurrent_requests: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_streams_per_session: Option<u32>,
    pub read_buffer: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSse {
    pub keepalive: Option<Scalar>,
    pub replay_buffer: Option<u32>,
    pub replay_bytes: Option<Scalar>,
    pub replay_total: Option<Scalar>,
    pub detached_grace: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub grace_period: Option<Scalar>,
    pub upgrade_sock: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub down_for: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    pub idle_timeout: Option<Scalar>,
    pub max: Option<u64>,
    pub max_per_principal: Option<u32>,
    pub max_per_ip: Option<u32>,
    /// `[{id, secret}]`: seal session ids (the first key seals, all open).
    pub keys: Option<Vec<RawSessionKey>>,
    /// How long a sealed id is accepted after it was issued.
    pub max_age: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionKey {
    pub id: String,
    /// `${VAR}` is read from the environment.
    pub secret: String,
}

/// A unit value as written: `5s` is a string to YAML, `0` or `1024` a number. Negative and
/// fractional numbers are kept as text, so the unit parser rejects them by value (`"-1"`,
/// `"1.5"`) instead of serde failing with a vague type error.
#[derive(Debug, Clone)]
pub enum Scalar {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl serde::de::Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number or a value with a unit, like 5s or 4MiB")
    }
    fn visit_u64<E>(self, n: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(n).map_or_else(|_| Scalar::Text(n.to_string()), Scalar::Int))
    }
    fn visit_u128<E>(self, n: u128) -> Result<Scalar, E> {
        Ok(Scalar::Text(n.to_string()))
    }
    fn visit_i128<E>(self, n: i128) -> Result<Scalar, E> {
        Ok(Scalar::Text(n.to_string()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Scalar, E> {
        // `{:?}` keeps the point (`1000.0`), so a float never passes as an integer.
        Ok(Scalar::Text(format!("{n:?}")))
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(s.to_owned()))
    }
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

fn explicit_null<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `store:` (see `config::StoreConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub on_error: Option<String>,
}
