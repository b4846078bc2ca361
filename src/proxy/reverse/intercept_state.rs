//! The interceptor rules' state for one request, kept in `RequestCtx`: what the rules decided
//! on the request (a rewritten body, the proxy's own answers, the probe) and what they still
//! need for its response (the calls to match it to, a JSON body being collected, the SSE
//! side). No Pingora here; the phases that fill and read it are in `interceptor.rs`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::interceptor::{Call, Memo, OwnedJudge, RuleSet};

/// Interception state of one request.
#[derive(Debug)]
pub struct Intercept {
    pub rules: Arc<RuleSet>,
    /// The requests of this exchange, to match the responses to them (server rules only).
    pub(super) calls: Vec<Call>,
    /// The body to forward instead of the client's.
    pub(super) body: Option<Bytes>,
    /// Answers the proxy adds to the upstream's reply.
    pub(super) answers: Vec<Bytes>,
    /// A JSON response collected for the rules.
    pub(super) json: Option<BytesMut>,
    /// SSE events go through the rules (or get the proxy's answers first).
    pub(super) sse: bool,
    /// The forwarded batch carries the proxy's probe `ping`, whose answer is taken out.
    pub(super) probe: bool,
    /// Methods of this stream's events already looked up.
    pub(super) memo: Memo,
    pub(super) accepts_json: bool,
}

impl Intercept {
    /// Hands the SSE side to a stream the proxy holds (which judges its events itself): the
    /// rules as an owned judge, when they concern server messages, and the proxy's answers.
    pub fn take_for_stream(&mut self, upstream: &str) -> (Option<OwnedJudge>, Vec<Bytes>) {
        let judge = self.rules.has_server_rules().then(|| OwnedJudge {
            rules: self.rules.clone(),
            calls: self.calls.clone(),
            upstream: upstream.to_owned(),
            probe: self.probe,
            memo: Memo::new(),
            hits: Vec::new(),
        });
        self.sse = false;
        (judge, std::mem::take(&mut self.answers))
    }

    /// The client's body goes upstream as sent (not rewritten, no member answered here).
    pub fn forwards_as_is(&self) -> bool {
        self.body.is_none() && self.answers.is_empty()
    }

    /// The length of the rewritten body, for `Content-Length`.
    pub fn body_len(&self) -> Option<usize> {
        self.body.as_ref().map(Bytes::len)
    }
}
