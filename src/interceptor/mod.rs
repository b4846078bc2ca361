//! Interceptor rules: policy on MCP messages from plain YAML (see `conf/rules.yaml`).
//!
//! No Pingora here: this module loads and validates a rule file (unknown keys, empty
//! patterns, bad JSON pointers, and actions that cannot apply to what their rule matches are
//! errors naming the rule), compiles it once, and evaluates messages:
//!
//! * **When a rule matches**: `from` (client/server, default client), `kind`
//!   (request/notification/response), `method` (exact or `*` glob; a response is matched by the
//!   method of the request it answers), `tool` (glob on `params.name`), `uri` (glob on
//!   `params.uri`), `params` (JSON pointer → value, all must hold), `upstream`.
//! * **What it does**: rules run in file order; `block`, `mock` and `drop` end the chain, while
//!   `set`/`remove` (JSON pointers into the message), `hide_tools` and `delay` accumulate.
//!   `hide_tools` also blocks `tools/call` to a hidden tool ([`RuleSet::hidden_tool`]).
//! * **Cost when nothing can match**: [`RuleSet::may_match`] answers from the (from, kind,
//!   method) classes precomputed at load, so unmatched traffic is never parsed past the peek.
//!
//! Wiring the rules into the proxy phases (request decisions, JSON responses, SSE events,
//! hot reload) is the next step; until then the proxy has no `interceptors:` setting.

mod edit;
mod raw;
mod rules;

pub use edit::{hide_tools, remove, set};
pub use rules::{Action, Decision, From, Kind, MessageView, Rule, RuleError, RuleSet, Terminal};

#[cfg(test)]
mod tests;
