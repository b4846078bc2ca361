//! Whether a file changed since it was last read, cheaply enough to ask once a second: its
//! modification time and length (symbolic links followed, so a Kubernetes secret volume's
//! swap of `..data` shows as a change of every file in it).

use std::path::Path;
use std::time::SystemTime;

/// A file's modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}
