//! A stdio upstream's keys (`command`, `env`, `cwd`, `mode`, `max_children`, `pool_size`,
//! `spawn_rate`): the program is looked up here, so `check-config` and start-up both fail on
//! one that does not exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env::expand_env;
use super::{invalid, rate};
use crate::config::raw::RawRate;
use crate::config::{
    ConfigError, StdioMode, StdioUpstream, DEFAULT_MAX_CHILDREN, DEFAULT_POOL_SIZE,
};

/// The optional keys of a stdio upstream, as written.
#[derive(Debug, Default)]
pub(super) struct StdioKeys {
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub mode: Option<String>,
    pub max_children: Option<u32>,
    pub pool_size: Option<u32>,
    pub spawn_rate: Option<RawRate>,
}

/// `field` is `upstreams[i]` (keys are appended) or the flag `--upstream-command`.
pub(super) fn validate(
    name: &str,
    command: &[String],
    keys: StdioKeys,
    field: &str,
) -> Result<StdioUpstream, ConfigError> {
    let StdioKeys {
        env,
        cwd,
        mode,
        max_children,
        pool_size,
        spawn_rate,
    } = keys;
    let key = |k: &str| {
        if field.starts_with("--") {
            field.to_owned()
        } else {
            format!("{field}.{k}")
        }
    };
    let (program, args) = command.split_first().ok_or_else(|| {
        invalid(
            key("command"),
            "empty: give [program, args...] (e.g. [npx, -y, @modelcontextprotocol/server-memory])",
        )
    })?;
    let cwd = cwd
        .as_deref()
        .map(|dir| {
            let path = PathBuf::from(dir);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => Ok(path),
                Ok(_) => Err(invalid(key("cwd"), format!("{dir:?} is not a directory"))),
                Err(e) => Err(invalid(key("cwd"), format!("{dir:?}: {e}"))),
            }
        })
        .transpose()?;
    let program = find_program(program).map_err(|m| invalid(key("command"), m))?;
    let env = env
        .into_iter()
        .map(|(k, v)| {
            let field = format!("{}.{k}", key("env"));
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(invalid(field, "invalid variable name"));
            }
            let value = expand_env(&v, &field)?;
            if value.contains('\0') {
                return Err(invalid(field, "value holds a NUL byte"));
            }
            Ok((k, value))
        })
        .collect::<Result<_, _>>()?;
    let mode = match mode.as_deref() {
        None | Some("per_session") => StdioMode::PerSession,
        Some("shared") => StdioMode::Shared,
        Some(other) => {
            return Err(invalid(
                key("mode"),
                format!("unknown mode {other:?} (use per_session or shared)"),
            ))
        }
    };
    let max_children = match max_children {
        None => DEFAULT_MAX_CHILDREN,
        Some(0) => return Err(invalid(key("max_children"), "must be more than 0")),
        Some(n) => n as usize,
    };
    let pool_size = match pool_size {
        None => DEFAULT_POOL_SIZE.min(max_children),
        Some(0) => return Err(invalid(key("pool_size"), "must be more than 0")),
        Some(n) if n as usize > max_children => {
            return Err(invalid(
                key("pool_size"),
                format!("{n} is more than max_children ({max_children})"),
            ))
        }
        Some(n) => n as usize,
    };
    let spawn_rate = spawn_rate
        .map(|r| rate(r, &key("spawn_rate")))
        .transpose()?;
    Ok(StdioUpstream {
        name: name.to_owned(),
        program,
        args: args.to_vec(),
        env,
        cwd,
        mode,
        max_children,
        pool_size,
        spawn_rate,
    })
}

/// An executable file: `program` itself when it holds a `/` (relative to the proxy's working
/// directory), else the first match on the proxy's `PATH`. Returned absolute, so the child's
/// `cwd` never changes which program runs.
fn find_program(program: &str) -> Result<PathBuf, String> {
    if program.is_empty() || program.contains('\0') {
        return Err(format!("invalid program {program:?}"));
    }
    if program.contains('/') {
        let path = std::path::absolute(program).map_err(|e| format!("{program:?}: {e}"))?;
        return match is_executable(&path) {
            Ok(()) => Ok(path),
            Err(why) => Err(format!("program {program:?} {why}")),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate).is_ok())
        .and_then(|found| std::path::absolute(found).ok())
        .ok_or_else(|| format!("program {program:?} not found on PATH"))
}

fn is_executable(path: &Path) -> Result<(), &'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err("is not a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err("is not executable"),
        Ok(_) => Ok(()),
        Err(_) => Err("does not exist"),
    }
}
