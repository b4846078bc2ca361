//! What the proxy answers itself (a refusal, the cache, a rule's mock, a replay from the
//! stream buffer), seen as it is written downstream, for the tape. A downstream module, added
//! only with `recording:`: Pingora runs it on every response head and body piece the session
//! writes, the ones `request_filter` writes included. The response's reads are kept as
//! refcounted `Bytes`, up to [`MAX`]; a response that went upstream turns it off at its head
//! (`tape_taps.rs` records those itself).

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::proxy::Session;

/// The most of a response body kept (past it, the tape keeps the status only).
pub const MAX: usize = 1 << 20;

/// One response the proxy wrote, as it left.
#[derive(Debug, Default)]
pub struct LocalAnswer {
    /// Off for a response that went upstream.
    off: bool,
    /// `(name, value)` of the head's headers.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<Bytes>,
    len: usize,
    pub over: bool,
}

impl LocalAnswer {
    /// The request went upstream: its response is recorded by the taps, not here.
    pub fn turn_off(session: &mut Session) {
        if let Some(m) = session.downstream_modules_ctx.get_mut::<LocalAnswer>() {
            m.off = true;
            m.body.clear();
        }
    }

    /// What was written, taken (once).
    pub fn take(session: &mut Session) -> Option<LocalAnswer> {
        let m = session.downstream_modules_ctx.get_mut::<LocalAnswer>()?;
        (!m.off).then(|| std::mem::take(m))
    }
}

#[async_trait]
impl HttpModule for LocalAnswer {
    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> pingora::Result<()> {
        if !self.off && !resp.status.is_informational() {
            self.headers = resp
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
        }
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> pingora::Result<()> {
        if let (false, Some(chunk)) = (self.off || self.over, body.as_ref()) {
            self.len += chunk.len();
            if self.len > MAX {
                self.over = true;
                self.body.clear();
            } else {
                self.body.push(chunk.clone());
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Builds a [`LocalAnswer`] per request.
#[derive(Debug)]
pub struct LocalAnswerBuilder;

impl HttpModuleBuilder for LocalAnswerBuilder {
    fn init(&self) -> Module {
        Box::<LocalAnswer>::default()
    }
}
