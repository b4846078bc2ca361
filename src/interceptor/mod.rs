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
//! * **Applying them** ([`plan_request`], [`plan_response`], [`plan_event`]): whole messages
//!   in, plans out (answers, replacement bodies, dropped events), for the proxy phases in
//!   `proxy::reverse::interceptor` to act on.
//! * **Hot reload** ([`Interceptors`]): the rules in force sit behind an `ArcSwap`; a new file
//!   is validated completely before it replaces them, and a request keeps the snapshot it
//!   started with.

mod edit;
mod engine;
mod raw;
mod reload;
mod rules;
mod server_msgs;
mod stream;

pub use edit::{hide_tools, remove, set};
pub use engine::{
    calls_of, is_probe, merge_answers, plan_request, response, Call, Hit, RequestPlan, PROBE_ID,
};
pub use reload::{Interceptors, ReloadError};
pub use rules::{Action, Decision, From, Kind, MessageView, Rule, RuleError, RuleSet, Terminal};
pub use server_msgs::{plan_event, plan_response, EventPlan};
pub use stream::{EventJudge, Memo, OwnedJudge};

#[cfg(test)]
mod tests;
