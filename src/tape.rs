//! Tapes: MCP traffic recorded at the edge, and replayed as a server.
//!
//! A tape is one session's messages (or, without sessions, one client's), as JSON Lines: a
//! header line, then one line per message as the client sent it or got it (`format.rs`). The
//! proxy records through a [`Recorder`] (`recorder.rs`): each request hands it lines that a
//! bounded queue carries to one writer thread (`writer.rs`), which redacts them
//! (`redact.rs`), writes, rotates and bounds the files. A full queue drops lines (counted in
//! `shadowcat_tape_dropped_total`); traffic never waits for the disk.
//!
//! The tools read tapes back: `check.rs` (`tape check`), `show.rs` (`tape list`, `tape show`),
//! `har.rs` (`tape export --format har`), and `replay.rs`, a Streamable HTTP MCP server that
//! answers requests with the recorded answers the matcher (`matcher.rs`) finds.
//!
//! No Pingora here: the proxy's taps are `proxy::reverse::tape_taps`.

pub mod check;
pub mod collect;
pub mod commands;
pub mod format;
pub mod har;
pub mod matcher;
pub mod recorder;
pub mod redact;
pub mod replay;
pub mod show;
mod writer;

pub use collect::Collector;
pub use format::{Direction, Header, Line, SseMark};
pub use recorder::{Origin, Recorder, Sample, Settings, Tap, TapeKey};
pub use redact::Redaction;
pub use writer::hex as writer_hex;
