//! The rules in force, swapped atomically on reload.
//!
//! Requests take a snapshot ([`Interceptors::current`]) when they start and keep it to the
//! end, so a reload never changes the rules under an exchange in progress. A new file is read
//! and validated completely before it replaces anything; an invalid one leaves the old rules
//! in place and says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::rules::{RuleError, RuleSet};

/// Why a reload kept the old rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The rules are inline in the main config: there is no file to read again.
    NoFile,
    Invalid(RuleError),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str("rules are inline in the config; nothing to reload"),
            ReloadError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReloadError {}

/// The rule set in force, and the file it came from.
#[derive(Debug)]
pub struct Interceptors {
    current: ArcSwap<RuleSet>,
    file: Option<PathBuf>,
    /// What the file looked like when it was last read (changes trigger a reload).
    stamp: std::sync::Mutex<Option<Stamp>>,
}

pub use crate::file_stamp::Stamp;

// === impl Interceptors ===

impl Interceptors {
    /// `rules` as loaded (and validated) with the config; `file` where they came from.
    pub fn new(rules: RuleSet, file: Option<PathBuf>) -> Self {
        let stamp = file.as_deref().and_then(Stamp::of);
        Self {
            current: ArcSwap::from_pointee(rules),
            file,
            stamp: std::sync::Mutex::new(stamp),
        }
    }

    /// No rules at all: the proxy never looks at a message for them.
    pub fn none() -> Self {
        Self::new(RuleSet::default(), None)
    }

    /// The rules in force now; keep the snapshot for the whole exchange.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads and validates the file, then swaps it in; on error the old rules stay.
    /// Returns the number of rules now in force.
    pub fn reload(&self) -> Result<usize, ReloadError> {
        let file = self.file.as_deref().ok_or(ReloadError::NoFile)?;
        let stamp = Stamp::of(file);
        let result = RuleSet::load(file).map_err(ReloadError::Invalid);
        // Remember the attempt either way: a broken file is reported once, not every second.
        if let Ok(mut s) = self.stamp.lock() {
            *s = stamp;
        }
        let rules = result?;
        let n = rules.rules().len();
        self.current.store(Arc::new(rules));
        Ok(n)
    }

    /// True when the file changed since it was last read (for the watcher's poll).
    pub fn file_changed(&self) -> bool {
        let Some(file) = self.file.as_deref() else {
            return false;
        };
        let now = Stamp::of(file);
        self.stamp.lock().map(|s| *s != now).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_keeps_the_old_rules_and_a_good_one_replaces_them() {
        let dir = std::env::temp_dir().join(format!("shadowcat-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rules.yaml");
        let one =
            "rules:\n  - name: a\n    match: {method: tools/call}\n    action: {delay: 1ms}\n";
        std::fs::write(&file, one).unwrap();
        let rules = RuleSet::load(&file).unwrap();
        let i = Interceptors::new(rules, Some(file.clone()));
        let before = i.current();
        assert!(!i.file_changed());

        std::fs::write(&file, "rules:\n  - name: a\n    action: {explode: 1}\n").unwrap();
        assert!(i.file_changed());
        let err = i.reload().unwrap_err();
        assert!(err.to_string().contains("rules[0]"), "{err}");
        assert!(Arc::ptr_eq(&before, &i.current()), "old rules stay");
        assert!(
            !i.file_changed(),
            "a failed attempt is not retried until the file changes"
        );

        let two =
            format!("{one}  - name: b\n    match: {{method: ping}}\n    action: {{delay: 1ms}}\n");
        std::fs::write(&file, two).unwrap();
        assert_eq!(i.reload().unwrap(), 2);
        assert_eq!(i.current().rules().len(), 2);
        assert_eq!(
            before.rules().len(),
            1,
            "a snapshot taken earlier is unchanged"
        );
        assert_eq!(Interceptors::none().reload(), Err(ReloadError::NoFile));
        std::fs::remove_dir_all(&dir).ok();
    }
}
