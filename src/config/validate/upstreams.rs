//! `upstreams`: HTTP upstreams (`url`) and stdio upstreams (`command`), or the one upstream of
//! `--upstream URL` / `--upstream-command -- PROGRAM ARGS...`.

use super::env::upstream_header;
use super::{invalid, stdio, upstream_tls};
use crate::config::raw::RawUpstream;
use crate::config::{
    ConfigError, Overrides, StdioUpstream, UpstreamConfig, UpstreamTarget, UpstreamTls, UpstreamUrl,
};

/// The validated upstream list, and which of them are stdio programs.
pub(super) fn validate(
    raw: Option<Vec<RawUpstream>>,
    overrides: &Overrides,
) -> Result<(Vec<UpstreamConfig>, Vec<StdioUpstream>), ConfigError> {
    let (upstreams, stdio) = match (&overrides.upstream, &overrides.upstream_command, raw) {
        (Some(_), Some(_), _) => {
            return Err(invalid(
                "--upstream-command",
                "give --upstream URL or --upstream-command, not both",
            ))
        }
        (Some(url), None, _) => (
            vec![upstream(
                "default".into(),
                UpstreamTarget::Url(UpstreamUrl::parse(url).map_err(|m| invalid("--upstream", m))?),
            )],
            Vec::new(),
        ),
        (None, Some(command), _) => {
            let name = "default".to_owned();
            let child = stdio::validate(
                &name,
                command,
                stdio::StdioKeys::default(),
                "--upstream-command",
            )?;
            (
                vec![upstream(name, UpstreamTarget::Stdio { bridge: None })],
                vec![child],
            )
        }
        (None, None, Some(list)) => {
            let mut upstreams = Vec::with_capacity(list.len());
            let mut stdio = Vec::new();
            for (i, u) in list.into_iter().enumerate() {
                let (upstream, child) = one(i, u)?;
                upstreams.push(upstream);
                stdio.extend(child);
            }
            (upstreams, stdio)
        }
        (None, None, None) => (Vec::new(), Vec::new()),
    };
    if upstreams.is_empty() {
        return Err(invalid(
            "upstreams",
            "at least one upstream is required (or pass --upstream or --upstream-command)",
        ));
    }
    for (i, u) in upstreams.iter().enumerate() {
        if upstreams[..i].iter().any(|o| o.name == u.name) {
            return Err(invalid(
                format!("upstreams[{i}].name"),
                format!("duplicate name {:?}", u.name),
            ));
        }
    }
    Ok((upstreams, stdio))
}

fn upstream(name: String, target: UpstreamTarget) -> UpstreamConfig {
    UpstreamConfig {
        name,
        target,
        weight: 1,
        forward_authorization: false,
        headers: Vec::new(),
        tls: Default::default(),
        http2: Default::default(),
    }
}

/// `upstreams[i]`: exactly one of `url` and `command`; the stdio keys only with `command`.
fn one(i: usize, u: RawUpstream) -> Result<(UpstreamConfig, Option<StdioUpstream>), ConfigError> {
    let name = u.name.unwrap_or_else(|| format!("upstream-{i}"));
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(invalid(
            format!("upstreams[{i}].name"),
            format!("{name:?}: use 1 to 64 of A-Z a-z 0-9 _ . -"),
        ));
    }
    let (target, child) = match (u.url, u.command) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("upstreams[{i}]"),
                "give `url` (an HTTP upstream) or `command` (a stdio upstream), not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                format!("upstreams[{i}]"),
                "needs `url` (an HTTP upstream) or `command` (a stdio upstream)",
            ))
        }
        (Some(url), None) => {
            let stdio_only = [
                ("env", u.env.is_some()),
                ("cwd", u.cwd.is_some()),
                ("mode", u.mode.is_some()),
                ("max_children", u.max_children.is_some()),
                ("pool_size", u.pool_size.is_some()),
                ("spawn_rate", u.spawn_rate.is_some()),
            ];
            if let Some((key, _)) = stdio_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    format!("upstreams[{i}].{key}"),
                    "only for a stdio upstream (`command`), not with `url`",
                ));
            }
            let url =
                UpstreamUrl::parse(&url).map_err(|m| invalid(format!("upstreams[{i}].url"), m))?;
            (UpstreamTarget::Url(url), None)
        }
        (None, Some(command)) => {
            // The bridge speaks plain HTTP/1.1 on loopback: TLS and HTTP/2 settings mean nothing.
            if u.tls.is_some() || u.http2.is_some() {
                let key = if u.tls.is_some() { "tls" } else { "http2" };
                return Err(invalid(
                    format!("upstreams[{i}].{key}"),
                    "only for an HTTP upstream (`url`), not with `command`",
                ));
            }
            let keys = stdio::StdioKeys {
                env: u.env.unwrap_or_default(),
                cwd: u.cwd,
                mode: u.mode,
                max_children: u.max_children,
                pool_size: u.pool_size,
                spawn_rate: u.spawn_rate,
            };
            let child = stdio::validate(&name, &command, keys, &format!("upstreams[{i}]"))?;
            (UpstreamTarget::Stdio { bridge: None }, Some(child))
        }
    };
    let weight = u.weight.unwrap_or(1);
    if !(1..=1000).contains(&weight) {
        return Err(invalid(
            format!("upstreams[{i}].weight"),
            "must be 1 to 1000",
        ));
    }
    let headers = u
        .headers
        .iter()
        .map(|(k, v)| upstream_header(k, v, &format!("upstreams[{i}].headers.{k}")))
        .collect::<Result<_, _>>()?;
    let tls = match &target {
        UpstreamTarget::Url(url) => upstream_tls::tls(u.tls, url, &format!("upstreams[{i}].tls"))?,
        UpstreamTarget::Stdio { .. } => UpstreamTls::default(),
    };
    let http2 = upstream_tls::http2(u.http2.as_deref(), &format!("upstreams[{i}].http2"))?;
    let upstream = UpstreamConfig {
        name,
        target,
        weight,
        forward_authorization: u.forward_authorization,
        headers,
        tls,
        http2,
    };
    Ok((upstream, child))
}
