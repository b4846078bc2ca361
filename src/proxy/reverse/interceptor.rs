//! Interceptor rules in the proxy phases (the rules themselves: `crate::interceptor`).
//!
//! * **Client requests** are decided in `request_filter`, from the pre-read body: a blocked or
//!   mocked request is answered here and never reaches an upstream; `set`/`remove` replace the
//!   body the upstream gets (`request_body_filter` swaps it in; `Content-Length` is fixed in
//!   `upstream_request_filter`); `delay` waits here. A batch partly answered here is forwarded
//!   without those members, and the proxy's answers are added to the upstream's reply.
//! * **Bodies too large to pre-read** (over 64 KiB, or chunked): the upstream gets the request
//!   header, then nothing until the body is complete (held, within `limits.max_body`, and sent
//!   chunked); then the rules decide as for a small body. A blocked or mocked one is answered
//!   by the proxy and the upstream sees the request aborted, never its body. An MCP 2026-07-28
//!   request whose `Mcp-Method` no rule can match streams through unheld, and its body is
//!   checked against the header at the end (-32020 on a mismatch).
//! * **JSON responses** a rule may match (by the method of the request they answer) are
//!   collected, up to `limits.max_sse_event`, and rewritten at their end (chunked). One that
//!   grows past that limit is forwarded unchanged.
//! * **SSE responses and GET streams**: with rules on server messages, events are judged one
//!   by one ([`super::sse::SseStream::filter_chunk`]); other events leave as their bytes.
//!
//! Each request keeps the rule snapshot it started with, whatever a reload does meanwhile.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::handlers::Route;
use super::respond;
use super::sse;
use super::McpProxy;
use crate::interceptor::{
    self as rules, Call, EventJudge, From, Hit, Kind, Memo, OwnedJudge, RuleSet,
};
use crate::mcp::{error_body, headers, peek, ErrorCode, ProtocolVersion, METHOD, NAME};

/// A request the interceptors answered after its body streamed; the answer is in the context.
pub const INTERCEPTED: ErrorType = ErrorType::Custom("intercepted");

/// Interception state of one request.
#[derive(Debug)]
pub struct Intercept {
    pub rules: Arc<RuleSet>,
    /// The requests of this exchange, to match the responses to them (server rules only).
    calls: Vec<Call>,
    /// The body to forward instead of the client's.
    body: Option<Bytes>,
    /// Answers the proxy adds to the upstream's reply.
    answers: Vec<Bytes>,
    /// A body too large to pre-read, held until its end.
    hold: bool,
    /// MCP 2026-07-28 `Mcp-Method` and `Mcp-Name`, when the request carried them.
    headers: Option<(String, Option<String>)>,
    /// The headers alone let this body through: check at its end that it agrees.
    verify_headers: bool,
    /// The answer to write instead of proxying (decided after the body streamed).
    local: Option<(u16, &'static str, Bytes)>,
    /// A JSON response collected for the rules.
    json: Option<BytesMut>,
    /// SSE events go through the rules (or get the proxy's answers first).
    sse: bool,
    /// The forwarded batch carries the proxy's probe `ping`, whose answer is taken out.
    probe: bool,
    /// Methods of this stream's events already looked up.
    memo: Memo,
    accepts_json: bool,
}

impl Intercept {
    /// The body (rewritten or held) must travel chunked: its length is not the client's.
    pub fn rechunks(&self) -> bool {
        self.hold
    }

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

    /// The length of the rewritten body, for `Content-Length`.
    pub fn body_len(&self) -> Option<usize> {
        self.body.as_ref().map(Bytes::len)
    }
}

// === impl McpProxy ===

impl McpProxy {
    /// The request side, at the end of `request_filter`. `Ok(true)`: answered here.
    pub(super) async fn intercept_request(
        &self,
        session: &mut Session,
        route: Route,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let rules = self.interceptors.current();
        if rules.is_empty() || !matches!(route, Route::Post | Route::Get) {
            return Ok(false);
        }
        let req = session.req_header();
        let mut ic = Intercept {
            rules: rules.clone(),
            calls: Vec::new(),
            body: None,
            answers: Vec::new(),
            hold: false,
            headers: mcp_headers(req, ctx.version),
            verify_headers: false,
            local: None,
            json: None,
            sse: false,
            probe: false,
            memo: Memo::new(),
            accepts_json: headers::accepts_json(
                req.headers
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            ),
        };
        if route == Route::Get {
            ctx.intercept = Some(Box::new(ic));
            return Ok(false);
        }
        let Some(body) = ctx.body.clone() else {
            // Too large to read now: hold it unless the 2026 headers rule every rule out.
            let out_of_reach = ic
                .headers
                .as_ref()
                .is_some_and(|(m, _)| !client_may_match(&rules, m));
            let client_side = rules.has_client_rules() || rules.hides_tools();
            ic.hold = client_side && !out_of_reach;
            ic.verify_headers = client_side && out_of_reach;
            ctx.intercept = Some(Box::new(ic));
            return Ok(false);
        };
        if let (Some(h), true) = (&ic.headers, rules.has_client_rules() || rules.hides_tools()) {
            if !headers::body_agrees(&body, h) {
                let (status, ct, answer) = header_mismatch(ctx);
                respond::send(session, status, ct, answer, &[], false).await?;
                ctx.status = status;
                return Ok(true);
            }
        }
        match self.decide(&mut ic, &body, ctx).await {
            Some((status, ct, answer)) => {
                respond::send(session, status, ct, answer, &[], false).await?;
                ctx.status = status;
                Ok(true)
            }
            None => {
                ctx.intercept = Some(Box::new(ic));
                Ok(false)
            }
        }
    }

    /// Runs the rules on a whole body: `Some` is the proxy's complete answer; otherwise what
    /// goes upstream is recorded in `ic`.
    async fn decide(
        &self,
        ic: &mut Intercept,
        body: &Bytes,
        ctx: &RequestCtx,
    ) -> Option<(u16, &'static str, Bytes)> {
        let rules = ic.rules.clone();
        let peeked = peek::peek(body).ok()?;
        if rules.has_server_rules() {
            ic.calls = rules::calls_of(&peeked);
        }
        let plan = rules::plan_request(&rules, body, &peeked, Some(self.upstream_name(ctx)));
        self.record(&plan.hits, ctx);
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        if plan.forwarded > 0 {
            ic.body = plan.body;
            ic.answers = plan.answers;
            ic.probe = plan.probe;
            return None;
        }
        if plan.answers.is_empty() {
            return Some((202, "", Bytes::new()));
        }
        let json = if plan.batch {
            rules::merge_answers(b"", &plan.answers)
        } else {
            plan.answers[0].clone()
        };
        Some(if ic.accepts_json {
            (200, "application/json", json)
        } else {
            let events: Vec<u8> = plan
                .answers
                .iter()
                .flat_map(|a| sse::message_event(a))
                .collect();
            (200, "text/event-stream", Bytes::from(events))
        })
    }

    /// Every chunk of the request body on its way upstream (`request_body_filter`).
    pub(super) async fn intercept_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(mut ic) = ctx.intercept.take() else {
            return Ok(());
        };
        let result = self
            .intercept_body_with(&mut ic, body, end_of_stream, ctx)
            .await;
        ctx.intercept = Some(ic);
        result
    }

    async fn intercept_body_with(
        &self,
        ic: &mut Intercept,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(new) = &ic.body {
            // The pre-read body, replayed from the retry buffer: send the rewritten one.
            *body = Some(if end_of_stream {
                new.clone()
            } else {
                Bytes::new()
            });
            return Ok(());
        }
        if !end_of_stream {
            if ic.hold {
                // Held: an empty piece is not written (a `None` would end the body).
                *body = Some(Bytes::new());
            }
            return Ok(());
        }
        let full = ctx.body.clone().unwrap_or_default();
        if ic.verify_headers || ic.hold {
            if let Some(h) = &ic.headers {
                if !headers::body_agrees(&full, h) {
                    ic.local = Some(header_mismatch(ctx));
                    return Error::e_explain(
                        INTERCEPTED,
                        "Mcp-Method/Mcp-Name disagree with the body",
                    );
                }
            }
        }
        if !ic.hold {
            return Ok(());
        }
        if let Some(answer) = self.decide(ic, &full, ctx).await {
            ic.local = Some(answer);
            return Error::e_explain(INTERCEPTED, "answered by an interceptor rule");
        }
        *body = Some(ic.body.clone().unwrap_or(full));
        Ok(())
    }

    /// The proxy's answer for a request whose body streamed, written by `fail_to_proxy`.
    pub(super) fn take_local_answer(ctx: &mut RequestCtx) -> Option<(u16, &'static str, Bytes)> {
        ctx.intercept.as_mut().and_then(|ic| ic.local.take())
    }

    /// The upstream's response header: decide whether its body goes through the rules.
    pub(super) fn intercept_response_header(
        &self,
        resp: &mut ResponseHeader,
        is_sse: bool,
        is_h2: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(ic) = ctx.intercept.as_mut() else {
            return Ok(());
        };
        if is_sse {
            ic.sse = ic.rules.has_server_rules() || !ic.answers.is_empty();
            return Ok(());
        }
        let status = resp.status.as_u16();
        let plain_json = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"))
            && resp.headers.get(http::header::CONTENT_ENCODING).is_none();
        let rules_want = ic.rules.has_server_rules()
            && ic
                .calls
                .iter()
                .any(|c| ic.rules.may_match(From::Server, Kind::Response, &c.method));
        let collect =
            (200..=299).contains(&status) && plain_json && (rules_want || !ic.answers.is_empty());
        if collect {
            resp.remove_header(&http::header::CONTENT_LENGTH);
            if !is_h2 {
                resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            }
            ic.json = Some(BytesMut::new());
        }
        Ok(())
    }

    /// A JSON response body chunk. Returns false when the body is not being collected.
    pub(super) fn intercept_json_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> bool {
        let limit = self.config.limits.max_sse_event;
        let upstream = self.upstream_name(ctx);
        let Some(ic) = ctx.intercept.as_mut() else {
            return false;
        };
        let Some(buf) = ic.json.as_mut() else {
            return false;
        };
        if let Some(chunk) = body.take() {
            if buf.len() + chunk.len() > limit {
                tracing::warn!(
                    limit,
                    "JSON response too large for the interceptors; forwarded unchanged"
                );
                let mut all = std::mem::take(buf);
                all.extend_from_slice(&chunk);
                *body = Some(all.freeze());
                ic.json = None;
                return true;
            }
            buf.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            *body = Some(Bytes::new());
            return true;
        }
        let original = std::mem::take(buf).freeze();
        ic.json = None;
        let rules = ic.rules.clone();
        let mut hits = Vec::new();
        let rewritten =
            rules::plan_response(&rules, &original, &ic.calls, Some(upstream), &mut hits);
        let out = rewritten.unwrap_or(original);
        let out = if ic.answers.is_empty() {
            out
        } else {
            rules::merge_answers(&out, &std::mem::take(&mut ic.answers))
        };
        self.record(&hits, ctx);
        *body = Some(out);
        true
    }

    /// An SSE chunk through the rules; `Ok(false)` when the stream is not intercepted.
    pub(super) fn intercept_sse_chunk(
        &self,
        body: &mut Option<Bytes>,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<bool, crate::transport::sse::ScanError> {
        let upstream = self.upstream_name(ctx);
        let (Some(ic), Some(stream)) = (ctx.intercept.as_mut(), ctx.sse.as_mut()) else {
            return Ok(false);
        };
        if !ic.sse {
            return Ok(false);
        }
        let Some(chunk) = body.as_ref() else {
            return Ok(true);
        };
        let prefix: Vec<Bytes> = std::mem::take(&mut ic.answers)
            .iter()
            .map(|a| sse::message_event(a))
            .collect();
        let rules = ic.rules.clone();
        let mut judge = EventJudge {
            rules: &rules,
            calls: &ic.calls,
            upstream: Some(upstream),
            memo: &mut ic.memo,
            probe: ic.probe,
            hits: Vec::new(),
        };
        let out = stream.filter_chunk(chunk, &self.metrics, prefix, &mut judge)?;
        if let Some(out) = out {
            *body = Some(out);
        }
        let hits = judge.hits;
        self.record(&hits, ctx);
        Ok(true)
    }

    /// The end of an intercepted SSE stream: the tail of an unterminated event, held until now.
    pub(super) fn intercept_sse_end(&self, body: &mut Option<Bytes>, ctx: &mut RequestCtx) {
        let intercepted = ctx.intercept.as_ref().is_some_and(|ic| ic.sse);
        if let (true, Some(stream)) = (intercepted, ctx.sse.as_mut()) {
            // Held bytes of an event that never ended: they follow everything forwarded.
            if let Some(tail) = stream.finish_filtered() {
                let mut all = BytesMut::new();
                if let Some(b) = body.as_ref() {
                    all.extend_from_slice(b);
                }
                all.extend_from_slice(&tail);
                *body = Some(all.freeze());
            }
        }
    }

    /// Metrics and a debug line for every action taken.
    fn record(&self, hits: &[Hit<'_>], ctx: &RequestCtx) {
        for hit in hits {
            self.metrics
                .interceptor_actions
                .with_label_values(&[hit.rule, hit.action])
                .inc();
            tracing::debug!(
                rule = hit.rule,
                action = hit.action,
                mcp_method = ctx.method_label,
                session = ctx.session.as_ref().map_or("", |s| &*s.id),
                "interceptor action"
            );
        }
    }
}

/// Could a rule match a client message with this method?
fn client_may_match(rules: &RuleSet, method: &str) -> bool {
    [Kind::Request, Kind::Notification, Kind::Response]
        .iter()
        .any(|k| rules.may_match(From::Client, *k, method))
        || (method == "tools/call" && rules.hides_tools())
}

/// `Mcp-Method` and `Mcp-Name` of an MCP 2026-07-28 request.
fn mcp_headers(req: &RequestHeader, version: ProtocolVersion) -> Option<(String, Option<String>)> {
    if version != ProtocolVersion::V2026_07_28 {
        return None;
    }
    let text = |name| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| headers::decode_value(v.trim()))
    };
    Some((text(METHOD)?, text(NAME)))
}

fn header_mismatch(ctx: &RequestCtx) -> (u16, &'static str, Bytes) {
    let body = error_body(
        ctx.reply_id(),
        ErrorCode::HeaderMismatch,
        "Mcp-Method or Mcp-Name does not match the request body",
    );
    (400, "application/json", body)
}
