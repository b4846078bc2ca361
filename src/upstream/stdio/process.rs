//! Starting a child and making sure it ends: the command (only the configured environment
//! plus `PATH`), its own process group, the parent-death signal, and the registry of live
//! process groups that shutdown signals.
//!
//! How children end, by what happens to the proxy:
//! * DELETE, idle timeout, a failed `initialize`: SIGTERM to the child's process group, SIGKILL
//!   after [`KILL_GRACE`] (`session::supervise`).
//! * SIGTERM/SIGINT (drain): the bridge ends every child the same way; if the process exits
//!   first (drained early), [`ProcessGroups::terminate_all_blocking`] runs before `exit`.
//! * The runtime drops the supervisor task (fast shutdown, or a panic): the group gets SIGKILL
//!   from the task's guard, and the child from `kill_on_drop`.
//! * The proxy is SIGKILLed: nothing in the proxy runs. On Linux each child was started with
//!   `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it when the proxy's thread that spawned
//!   it ends (the runtime's worker threads live as long as the proxy). Its own descendants
//!   (`npx` starting `node`) do not inherit that setting: they lose their stdin, which ends
//!   a well-behaved MCP server, but one that ignores EOF outlives the proxy. Elsewhere (macOS)
//!   there is no parent-death signal: direct children also only see EOF on stdin.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};

use crate::config::StdioUpstream;

/// From SIGTERM to SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// The command for one child: stdin/stdout/stderr piped, an environment of exactly `env` plus
/// the proxy's `PATH` (never the proxy's own secrets), its own process group (so one signal
/// reaches what it starts), killed if its handle is dropped, and killed if the proxy dies.
pub(super) fn command(spec: &StdioUpstream) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    die_with_parent(&mut cmd);
    cmd
}

/// `PR_SET_PDEATHSIG`: the kernel sends the child SIGKILL when the thread that spawned it
/// ends (with the proxy, since the runtime's worker threads live as long as it does).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one prctl system call (rustix issues it
    // directly, with no allocation or lock) and touches no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}

/// Sends `signal` to the process group `pgid` (a child's pid: each leads its own group).
/// A group that is gone already is fine.
pub(super) fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, signal);
    }
}

/// The process groups of every live child of every bridge, for shutdown.
#[derive(Debug, Clone, Default)]
pub struct ProcessGroups(Arc<Mutex<HashSet<i32>>>);

// === impl ProcessGroups ===

impl ProcessGroups {
    pub(super) fn insert(&self, pgid: i32) {
        self.lock().insert(pgid);
    }

    pub(super) fn remove(&self, pgid: i32) {
        self.lock().remove(&pgid);
    }

    /// How many children are alive.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every child from outside the runtime (the process is about to exit): SIGTERM to
    /// each group, up to `grace` for the leaders to exit, then SIGKILL to every group, which
    /// also reaches anything a child started.
    pub fn terminate_all_blocking(&self, grace: Duration) {
        let groups: Vec<i32> = self.lock().iter().copied().collect();
        if groups.is_empty() {
            return;
        }
        for pgid in &groups {
            signal_group(*pgid, Signal::TERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < grace && groups.iter().any(|p| running(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pgid in &groups {
            signal_group(*pgid, Signal::KILL);
        }
        tracing::info!(children = groups.len(), "stdio children ended");
    }
}

/// Is the process running (not gone, not a zombie waiting to be reaped)?
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => Pid::from_raw(pid).is_some_and(|p| {
            cfg!(not(target_os = "linux")) && rustix::process::test_kill_process(p).is_ok()
        }),
    }
}
