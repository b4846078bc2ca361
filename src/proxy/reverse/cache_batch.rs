//! A batch (MCP 2025-03-26) in the result cache: members the cache can answer are answered
//! here, the others go upstream as a smaller batch, and the two are merged into one reply,
//! the way the interceptors merge a batch they partly answered (`intercept_state`: the
//! proxy's answers are added to the upstream's JSON array, or sent first as SSE events).
//!
//! The batch is split only when what goes upstream still holds a request (its answer carries
//! the merge); a batch whose other members are notifications or responses goes upstream
//! whole, as before. Members answered upstream are not stored from a batch reply.

use std::sync::Arc;

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use serde_json::value::RawValue;

use super::ctx::RequestCtx;
use super::intercept_state::Intercept;
use super::{respond, sse, McpProxy};
use crate::cache::{self, Cache, Key, Plan};
use crate::interceptor::{merge_answers, Memo, RuleSet};
use crate::mcp::{headers, ProtocolVersion};

impl McpProxy {
    /// A batch with members the cache answers; `Ok(true)`: all answered here.
    pub(super) async fn cache_batch(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        cache: &Cache,
        body: Bytes,
    ) -> Result<bool> {
        if ctx.version != ProtocolVersion::V2025_03_26 {
            return Ok(false);
        }
        let Ok(members) = serde_json::from_slice::<Vec<&RawValue>>(&body) else {
            return Ok(false);
        };
        let Ok(upstream) = self.choose_upstream(ctx) else {
            return Ok(false);
        };
        let upstream: Arc<str> = Arc::from(upstream.name.as_str());
        let mut answers = Vec::new();
        let mut rest: Vec<&str> = Vec::new();
        let mut rest_requests = 0;
        let mut hits = Vec::new();
        for member in &members {
            let text = member.get();
            let answered = match cache::request::plan(text.as_bytes()) {
                Plan::Cacheable(r) => {
                    let key = Key::new(upstream.clone(), &r, ctx.version.as_str(), None);
                    self.find(cache, &key, &r, ctx)
                        .map(|reply| (r.method, reply))
                }
                _ => None,
            };
            match answered {
                Some((method, reply)) => {
                    hits.push(method);
                    answers.push(reply);
                }
                None => {
                    rest_requests += usize::from(is_request(member));
                    rest.push(text);
                }
            }
        }
        if answers.is_empty() || (!rest.is_empty() && rest_requests == 0) {
            return Ok(false);
        }
        for method in hits {
            self.count(method, "hit");
        }
        if let Some(ic) = ctx.intercept.as_ref() {
            answers = answers
                .into_iter()
                .map(|a| self.intercept_cached(ic, a, &upstream, ctx))
                .collect();
        }
        if rest.is_empty() {
            return self.answer_batch(session, ctx, &answers).await;
        }
        let forwarded = Bytes::from(format!("[{}]", rest.join(",")));
        match ctx.intercept.as_mut() {
            Some(ic) => {
                ic.body = Some(forwarded);
                ic.answers = answers;
            }
            None => {
                let accept = session.req_header().headers.get(http::header::ACCEPT);
                ctx.intercept = Some(Box::new(Intercept {
                    rules: Arc::new(RuleSet::default()),
                    calls: Vec::new(),
                    body: Some(forwarded),
                    answers,
                    json: None,
                    sse: false,
                    probe: false,
                    memo: Memo::new(),
                    accepts_json: headers::accepts_json(accept.and_then(|v| v.to_str().ok())),
                }));
            }
        }
        Ok(false)
    }

    /// Every member answered from the cache: one JSON array, or one SSE event per answer for
    /// a client that accepts only SSE.
    async fn answer_batch(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        answers: &[Bytes],
    ) -> Result<bool> {
        let accept = session.req_header().headers.get(http::header::ACCEPT);
        let (ct, body) = match headers::accepts_json(accept.and_then(|v| v.to_str().ok())) {
            true => ("application/json", merge_answers(b"", answers)),
            false => {
                let events: Vec<u8> = answers.iter().flat_map(|a| sse::message_event(a)).collect();
                ("text/event-stream", Bytes::from(events))
            }
        };
        respond::send(session, 200, ct, body, &[], false).await?;
        ctx.status = 200;
        Ok(true)
    }
}

/// A JSON-RPC request (a method and an id), which the upstream answers with a body.
fn is_request(member: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Shape<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
        method: Option<&'a RawValue>,
    }
    serde_json::from_str::<Shape<'_>>(member.get())
        .is_ok_and(|s| s.method.is_some() && s.id.is_some_and(|id| id.get() != "null"))
}
