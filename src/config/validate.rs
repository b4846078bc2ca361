//! Raw config → validated [`Config`]. Every error names the field path (`timeouts.connect`,
//! `upstreams[1].url`) or the flag (`--bind`) it came from.

use std::net::SocketAddr;
use std::time::Duration;

mod admin;
mod auth;
mod cache;
mod env;
mod interceptors;
mod listeners;
mod session_keys;

mod recording;
mod stdio;
mod store;

mod telemetry;
mod upstream_tls;
mod upstreams;

use super::raw::{RawConfig, RawRate, Scalar};
use super::units::{parse_duration, parse_size};
use super::{
    Cidr, Config, ConfigError, Health, Limits, LoadBalancing, LogConfig, LogFormat, Overrides,
    Rate, RateLimits, Security, Sessions, Shutdown, SseConfig, Timeouts,
};
use crate::authority::AuthorityPattern;
use env::expand_env;

/// Largest `limits.max_body` accepted.
const MAX_BODY_CEILING: u64 = 1 << 30;
/// Smallest `limits.max_sse_event` accepted.
const MIN_SSE_EVENT: u64 = 1 << 10;

/// A validation error; both parts are one line (a field path can carry a key with newlines).
fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: super::one_line(&field.into()),
        message: super::one_line(&message.into()),
    }
}

pub fn validate(mut raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
    let defaults = Config::default();

    let listeners =
        listeners::validate(raw.listen, raw.listeners, overrides, super::DEFAULT_LISTEN)?;
    let (admin, admin_bearer_token) =
        admin::validate(raw.admin.take(), overrides.admin.as_deref(), defaults.admin)?;
    let endpoint = raw.endpoint.unwrap_or(defaults.endpoint);
    if !endpoint.starts_with('/') || endpoint.contains(['?', '#', ' ']) {
        return Err(invalid(
            "endpoint",
            format!("{endpoint:?} must be a path starting with '/'"),
        ));
    }
    let threads = match (overrides.threads, raw.threads) {
        (Some(n), _) => threads(n, "--threads")?,
        (None, Some(n)) => threads(n as usize, "threads")?,
        (None, None) => None,
    };

    let log = log(raw.log.format.as_deref(), overrides)?;
    let store = store::store(raw.store.take())?;

    let telemetry = raw.telemetry.take().map(telemetry::validate).transpose()?;
    let (upstreams, stdio) = upstreams::validate(raw.upstreams.take(), overrides)?;
    let load_balancing = match raw.load_balancing.as_deref() {
        None | Some("round_robin") => LoadBalancing::RoundRobin,
        Some("least_sessions") => LoadBalancing::LeastSessions,
        Some(other) => {
            return Err(invalid(
                "load_balancing",
                format!("unknown strategy {other:?} (use round_robin or least_sessions)"),
            ))
        }
    };
    let health = Health {
        down_for: positive(
            raw.health.down_for,
            "health.down_for",
            defaults.health.down_for,
        )?,
    };
    let max_sessions = raw.sessions.max.unwrap_or(defaults.sessions.max as u64);
    if max_sessions == 0 {
        return Err(invalid("sessions.max", "must be more than 0"));
    }
    let max = usize::try_from(max_sessions)
        .map_err(|_| invalid("sessions.max", "too large for this platform"))?;
    let sessions = Sessions {
        idle_timeout: positive(
            raw.sessions.idle_timeout,
            "sessions.idle_timeout",
            defaults.sessions.idle_timeout,
        )?,
        max,
        max_per_principal: per_client(
            raw.sessions.max_per_principal,
            "sessions.max_per_principal",
            max,
        )?,
        max_per_ip: per_client(raw.sessions.max_per_ip, "sessions.max_per_ip", max)?,
        max_age: positive(
            raw.sessions.max_age,
            "sessions.max_age",
            defaults.sessions.max_age,
        )?,
        keys: session_keys::keys(raw.sessions.keys)?,
    };

    let timeouts = Timeouts {
        connect: positive(
            raw.timeouts.connect,
            "timeouts.connect",
            defaults.timeouts.connect,
        )?,
        request: positive(
            raw.timeouts.request,
            "timeouts.request",
            defaults.timeouts.request,
        )?,
        idle_stream: positive(
            raw.timeouts.idle_stream,
            "timeouts.idle_stream",
            defaults.timeouts.idle_stream,
        )?,
    };

    let max_body = size(
        raw.limits.max_body,
        "limits.max_body",
        defaults.limits.max_body,
    )?;
    if max_body == 0 || max_body > MAX_BODY_CEILING {
        return Err(invalid(
            "limits.max_body",
            "must be more than 0 and at most 1GiB",
        ));
    }
    let max_sse_event = size(
        raw.limits.max_sse_event,
        "limits.max_sse_event",
        defaults.limits.max_sse_event as u64,
    )?;
    if max_sse_event < MIN_SSE_EVENT {
        return Err(invalid("limits.max_sse_event", "must be at least 1KiB"));
    }
    let max_sse_event = usize::try_from(max_sse_event)
        .map_err(|_| invalid("limits.max_sse_event", "too large for this platform"))?;

    let max_header_bytes = size(
        raw.limits.max_header_bytes,
        "limits.max_header_bytes",
        defaults.limits.max_header_bytes as u64,
    )?;
    if max_header_bytes == 0 {
        return Err(invalid("limits.max_header_bytes", "must be more than 0"));
    }
    let max_header_bytes = usize::try_from(max_header_bytes).unwrap_or(usize::MAX);

    let keepalive = match raw.sse.keepalive {
        None => defaults.sse.keepalive,
        Some(v) => Some(duration(&v, "sse.keepalive")?).filter(|d| !d.is_zero()),
    };
    let grace_period = match raw.shutdown.grace_period {
        None => defaults.shutdown.grace_period,
        Some(v) => duration(&v, "shutdown.grace_period")?,
    };
    let upgrade_sock = match raw.shutdown.upgrade_sock.as_deref() {
        None => defaults.shutdown.upgrade_sock.clone(),
        Some(p) => {
            super::shutdown::upgrade_sock(p).map_err(|m| invalid("shutdown.upgrade_sock", m))?
        }
    };

    let patterns = |list: Option<Vec<String>>, field: &str, default| match list {
        None => Ok(default),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.trim().is_empty() {
                    Err(invalid(format!("{field}[{i}]"), "empty pattern"))
                } else {
                    Ok(AuthorityPattern::new(p.trim()))
                }
            })
            .collect(),
    };
    let loopback = Security::loopback();
    let hsts = raw
        .security
        .hsts
        .map(|h| {
            let max_age = positive(
                h.max_age,
                "security.hsts.max_age",
                super::DEFAULT_HSTS_MAX_AGE,
            )?;
            let value = super::listeners::hsts_value(max_age, h.include_subdomains, h.preload);
            http::HeaderValue::from_str(&value).map_err(|_| invalid("security.hsts", "invalid"))
        })
        .transpose()?;
    let security = Security {
        hsts,
        allowed_origins: patterns(
            raw.security.allowed_origins,
            "security.allowed_origins",
            loopback.allowed_origins,
        )?,
        allowed_hosts: patterns(
            raw.security.allowed_hosts,
            "security.allowed_hosts",
            loopback.allowed_hosts,
        )?,
    };

    let rl = raw.rate_limits;
    let rate_limits = RateLimits {
        per_principal: rl
            .per_principal
            .map(|r| rate(r, "rate_limits.per_principal"))
            .transpose()?,
        per_ip: rl
            .per_ip
            .map(|r| rate(r, "rate_limits.per_ip"))
            .transpose()?,
        per_session: rl
            .per_session
            .map(|r| rate(r, "rate_limits.per_session"))
            .transpose()?,
        trusted_proxies: rl
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Cidr::parse(c).map_err(|m| invalid(format!("rate_limits.trusted_proxies[{i}]"), m))
            })
            .collect::<Result<_, _>>()?,
    };

    let auth = raw.auth.map(auth::validate).transpose()?;
    let interceptors = interceptors::validate(raw.interceptors.unwrap_or_default(), &upstreams)?;
    let default_max = defaults.cache.as_ref().map_or(64 << 20, |c| c.max_bytes);
    let cache = cache::validate(
        raw.cache.take().unwrap_or_default(),
        &upstreams,
        default_max,
    )?;

    let recording = recording::validate(raw.recording.take(), overrides.record.as_deref())?;

    let mut obsolete = Vec::new();
    if raw.direct_exchange.is_some() {
        obsolete.push(
            "direct_exchange: obsolete and ignored; every request goes upstream by the one \
             exchange (remove the key)"
                .to_owned(),
        );
    }

    Ok(Config {
        obsolete,
        listeners,
        admin,
        admin_bearer_token,
        endpoint,
        threads,
        upstreams,
        timeouts,
        limits: Limits {
            max_body,
            max_sse_event,
            max_headers: count(
                raw.limits.max_headers,
                "limits.max_headers",
                defaults.limits.max_headers,
            )?,
            max_header_bytes,
            body_read_timeout: positive(
                raw.limits.body_read_timeout,
                "limits.body_read_timeout",
                defaults.limits.body_read_timeout,
            )?,
            keepalive_idle: positive(
                raw.limits.keepalive_idle,
                "limits.keepalive_idle",
                defaults.limits.keepalive_idle,
            )?,
            body_total_timeout: positive(
                raw.limits.body_total_timeout,
                "limits.body_total_timeout",
                defaults.limits.body_total_timeout,
            )?,
            header_read_timeout: positive(
                raw.limits.header_read_timeout,
                "limits.header_read_timeout",
                defaults.limits.header_read_timeout,
            )?,
            max_concurrent_requests: count(
                raw.limits.max_concurrent_requests,
                "limits.max_concurrent_requests",
                defaults.limits.max_concurrent_requests,
            )?,
            max_connections: count(
                raw.limits.max_connections,
                "limits.max_connections",
                defaults.limits.max_connections,
            )?,
            max_streams_per_session: count(
                raw.limits.max_streams_per_session,
                "limits.max_streams_per_session",
                defaults.limits.max_streams_per_session,
            )?,
            read_buffer: match size(
                raw.limits.read_buffer,
                "limits.read_buffer",
                defaults.limits.read_buffer as u64,
            )? {
                n if (1024..=(1 << 20)).contains(&n) => n as usize,
                _ => return Err(invalid("limits.read_buffer", "must be 1KiB to 1MiB")),
            },
        },
        sse: SseConfig {
            keepalive,
            replay_buffer: raw
                .sse
                .replay_buffer
                .map_or(defaults.sse.replay_buffer, |n| n as usize),
            replay_bytes: size_usize(
                raw.sse.replay_bytes,
                "sse.replay_bytes",
                defaults.sse.replay_bytes,
            )?,
            replay_total: size_usize(
                raw.sse.replay_total,
                "sse.replay_total",
                defaults.sse.replay_total,
            )?,
            detached_grace: match raw.sse.detached_grace {
                None => defaults.sse.detached_grace,
                Some(v) => duration(&v, "sse.detached_grace")?,
            },
        },
        shutdown: Shutdown {
            grace_period,
            upgrade_sock,
            upgrade: overrides.upgrade,
        },
        load_balancing,
        health,
        sessions,
        security,
        rate_limits,
        auth,
        interceptors,
        cache,
        recording,
        stdio,
        log,
        store,

        telemetry,
    })
}

/// `log.format`, or `--log-format` in its place.
fn log(raw: Option<&str>, overrides: &Overrides) -> Result<LogConfig, ConfigError> {
    let (value, field) = match (overrides.log_format.as_deref(), raw) {
        (Some(v), _) => (v, "--log-format"),
        (None, Some(v)) => (v, "log.format"),
        (None, None) => return Ok(LogConfig::default()),
    };
    let format = LogFormat::parse(value).ok_or_else(|| {
        invalid(
            field,
            format!("unknown format {value:?} (use text or json)"),
        )
    })?;
    Ok(LogConfig { format })
}

/// Pingora runs the proxy on this many tokio worker threads.
fn threads(n: usize, field: &str) -> Result<Option<usize>, ConfigError> {
    match n {
        1..=1024 => Ok(Some(n)),
        _ => Err(invalid(field, "must be 1 to 1024")),
    }
}

/// A per-client session cap: the default (fitted under a smaller `sessions.max`), or a value
/// from 1 to `sessions.max` (equal to it turns the cap off; above it is a mistake).
fn per_client(value: Option<u32>, field: &str, max: usize) -> Result<usize, ConfigError> {
    let n = count(value, field, super::DEFAULT_SESSIONS_PER_CLIENT.min(max))?;
    if n > max {
        return Err(invalid(
            field,
            format!("must not exceed sessions.max ({max}); equal to it turns the cap off"),
        ));
    }
    Ok(n)
}

fn count(value: Option<u32>, field: &str, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(field, "must be more than 0")),
        Some(n) => Ok(n as usize),
    }
}

fn rate(raw: RawRate, field: &str) -> Result<Rate, ConfigError> {
    if raw.rate == 0 {
        return Err(invalid(format!("{field}.rate"), "must be more than 0"));
    }
    let per = match raw.per {
        None => Duration::from_secs(1),
        Some(v) => match duration(&v, &format!("{field}.per"))? {
            d if d.is_zero() => return Err(invalid(format!("{field}.per"), "must be more than 0")),
            d => d,
        },
    };
    let burst = raw.burst.unwrap_or(raw.rate);
    if burst == 0 {
        return Err(invalid(format!("{field}.burst"), "must be more than 0"));
    }
    Ok(Rate {
        rate: raw.rate,
        per,
        burst,
    })
}

fn addr(text: &str, field: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("invalid address {text:?} (use IP:PORT, e.g. 127.0.0.1:8080)"),
        )
    })
}

fn duration(value: &Scalar, field: &str) -> Result<Duration, ConfigError> {
    parse_duration(&value.text()).map_err(|m| invalid(field, m))
}

fn positive(
    value: Option<Scalar>,
    field: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match duration(&v, field)? {
            d if d.is_zero() => Err(invalid(field, "must be more than 0")),
            d => Ok(d),
        },
    }
}

fn size(value: Option<Scalar>, field: &str, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse_size(&v.text()).map_err(|m| invalid(field, m)),
    }
}

/// [`size`] as a `usize` (for in-memory bounds).
fn size_usize(value: Option<Scalar>, field: &str, default: usize) -> Result<usize, ConfigError> {
    usize::try_from(size(value, field, default as u64)?)
        .map_err(|_| invalid(field, "too large for this platform"))
}
