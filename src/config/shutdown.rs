//! `shutdown:`: how the process ends (the drain's grace period) and how a new one takes its
//! listening sockets over (Pingora's zero-downtime upgrade).

use std::path::PathBuf;
use std::time::Duration;

/// Where the old process hands its listening sockets to the new one, unless configured.
pub const DEFAULT_UPGRADE_SOCK: &str = "/tmp/shadowcat_upgrade.sock";

/// Longest Unix socket path (`sun_path` is 108 bytes with its terminating NUL on Linux).
const MAX_SOCK_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    pub grace_period: Duration,
    /// The Unix socket the listening sockets pass through on an upgrade: the old process
    /// (on SIGQUIT) sends them there, the new one (`--upgrade`) receives them.
    pub upgrade_sock: PathBuf,
    /// Start by taking the listening sockets of a running process (`reverse --upgrade`;
    /// a flag only, never a file key).
    pub upgrade: bool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(10),
            upgrade_sock: PathBuf::from(DEFAULT_UPGRADE_SOCK),
            upgrade: false,
        }
    }
}

/// Checks `shutdown.upgrade_sock`: a UTF-8 path (Pingora takes it as text) that fits a Unix
/// socket address. The message is the field's error.
pub fn upgrade_sock(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("must be a path".into());
    }
    if text.len() > MAX_SOCK_PATH {
        return Err(format!(
            "a Unix socket path holds at most {MAX_SOCK_PATH} bytes, this one is {}",
            text.len()
        ));
    }
    if text.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    Ok(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_sock_takes_paths_that_fit_a_unix_socket() {
        assert_eq!(
            upgrade_sock("/run/shadowcat/upgrade.sock").unwrap(),
            PathBuf::from("/run/shadowcat/upgrade.sock")
        );
        assert!(upgrade_sock("").is_err());
        assert!(upgrade_sock("a\0b").is_err());
        let long = format!("/{}", "x".repeat(MAX_SOCK_PATH));
        assert!(upgrade_sock(&long).unwrap_err().contains("at most 107"));
        assert!(upgrade_sock(&long[..MAX_SOCK_PATH]).is_ok());
    }

    #[test]
    fn the_key_is_read_from_yaml_and_the_flag_from_overrides() {
        let one = "upstreams:\n  - url: http://127.0.0.1:3001/mcp\n";
        let c = crate::config::from_yaml_str(one).unwrap();
        assert_eq!(c.shutdown, Shutdown::default());
        let yaml = format!("{one}shutdown:\n  upgrade_sock: /run/sc/up.sock\n");
        let c = crate::config::from_yaml_str(&yaml).unwrap();
        assert_eq!(c.shutdown.upgrade_sock, PathBuf::from("/run/sc/up.sock"));
        let bad = format!("{one}shutdown:\n  upgrade_sock: \"\"\n");
        let e = crate::config::from_yaml_str(&bad).unwrap_err();
        assert_eq!(e.field(), "shutdown.upgrade_sock");
        let file_key = format!("{one}shutdown:\n  upgrade: true\n");
        assert!(
            crate::config::from_yaml_str(&file_key).is_err(),
            "a flag only"
        );
        let flag = crate::config::Overrides {
            upgrade: true,
            ..Default::default()
        };
        let c = crate::config::from_yaml_str_with(Some(one), &flag).unwrap();
        assert!(c.shutdown.upgrade);
    }

    #[test]
    fn upgrading_is_off_by_default() {
        let s = Shutdown::default();
        assert!(!s.upgrade);
        assert_eq!(s.upgrade_sock, PathBuf::from(DEFAULT_UPGRADE_SOCK));
    }
}
