//! Interceptor rules in the proxy phases (the rules themselves: `crate::interceptor`).
//!
//! * **Client requests** are decided in `request_filter`, from the pre-read body: a blocked or
//!   mocked request is answered here and never reaches an upstream; `set`/`remove` replace the
//!   body the upstream gets (`request_body_filter` swaps it in; `Content-Length` is fixed in
//!   `upstream_request_filter`); `delay` waits here. A batch partly answered here is forwarded
//!   without those members, and the proxy's answers are added to the upstream's reply.
//! * **Every body is read whole first** when rules exist (`body_read::read_whole`), whatever its
//!   size or framing, and a body the judge cannot read is refused (`mcp::judge`): no request
//!   reaches an upstream, not even its head, before the rules decided on all of it
//!   (`request_body`, which also checks MCP 2026-07-28 `Mcp-Method`/`Mcp-Name` against it).
//! * **JSON responses** a rule may match (by the method of the request they answer) are
//!   collected, up to `limits.max_sse_event`, and rewritten at their end (chunked). One that
//!   grows past that limit is forwarded unchanged.
//! * **SSE responses and GET streams**: with rules on server messages, events are judged one
//!   by one ([`super::sse::SseStream::filter_chunk`]); other events leave as their bytes.
//!
//! Each request keeps the rule snapshot it started with, whatever a reload does meanwhile.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use super::intercept_state::Intercept;
use super::request_checks::Route;
use super::respond;
use super::sse;
use super::McpProxy;
use crate::interceptor::{self as rules, EventJudge, From, Hit, Kind, Memo, RuleSet};
use crate::mcp::{error_body, headers, peek, ErrorCode};

// === impl McpProxy ===

impl McpProxy {
    /// The request side, at the end of `request_filter`. `Ok(true)`: answered here.
    pub(super) async fn intercept_request(
        &self,
        session: &mut Session,
        route: Route,
        rules: Arc<RuleSet>,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if rules.is_empty() || !matches!(route, Route::Post | Route::Get) {
            return Ok(false);
        }
        let req = session.req_header();
        let mut ic = Intercept {
            rules: rules.clone(),
            calls: Vec::new(),
            body: None,
            answers: Vec::new(),
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
            // Unreachable with rules: `request_filter` reads every body whole first. Should
            // that ever change, refuse rather than forward a body no rule has seen.
            let (status, ct, answer) = unjudged(ctx);
            respond::send(session, status, ct, answer, &[], true).await?;
            ctx.status = status;
            return Ok(true);
        };
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
        // `request_filter` refused what the judge cannot read; should one get here, it is
        // refused too, never forwarded undecided.
        let Ok(peeked) = peek::peek(body) else {
            return Some(unjudged(ctx));
        };
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

    /// The request body on its way upstream (the exchange sends what this leaves): the held
    /// body is swapped for the one a rule rewrote.
    pub(super) fn intercept_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &RequestCtx,
    ) {
        if let Some(new) = ctx.intercept.as_ref().and_then(|ic| ic.body.as_ref()) {
            *body = Some(if end_of_stream {
                new.clone()
            } else {
                Bytes::new()
            });
        }
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

    /// An answer from the cache through the server-side rules, as a live JSON response would
    /// go (`hide_tools` and response rules apply to it at once).
    pub(super) fn intercept_cached(
        &self,
        ic: &Intercept,
        reply: Bytes,
        upstream: &str,
        ctx: &RequestCtx,
    ) -> Bytes {
        let mut hits = Vec::new();
        let rewritten =
            rules::plan_response(&ic.rules, &reply, &ic.calls, Some(upstream), &mut hits);
        self.record(&hits, ctx);
        rewritten.unwrap_or(reply)
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
            ctx.trace_event(
                "shadowcat.interceptor",
                &[
                    ("shadowcat.rule", hit.rule),
                    ("shadowcat.action", hit.action),
                ],
            );
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

fn unjudged(ctx: &RequestCtx) -> (u16, &'static str, Bytes) {
    let body = error_body(
        ctx.reply_id(),
        ErrorCode::InvalidRequest,
        "Invalid Request: the body was not read, so the rules cannot judge it",
    );
    (400, "application/json", body)
}
