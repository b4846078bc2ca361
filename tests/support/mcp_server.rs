//! A mock MCP server that issues sessions like the SDKs do: `initialize` creates one (answered
//! as JSON, or as SSE when `sse` is set), later requests need it (400 without, 404 unknown),
//! DELETE ends it, GET opens a stream that names the session. `forget()` drops every session,
//! like an upstream restart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::mock::{MockUpstream, Received, Reply};

#[derive(Clone, Default)]
pub struct SessionServer {
    sessions: Arc<Mutex<HashSet<String>>>,
    next: Arc<AtomicUsize>,
    prefix: &'static str,
    sse: bool,
}

impl SessionServer {
    pub async fn start(prefix: &'static str, sse: bool) -> (Self, MockUpstream) {
        let server = Self {
            prefix,
            sse,
            ..Self::default()
        };
        let handler = server.clone();
        let mock = MockUpstream::start(move |req| handler.handle(req)).await;
        (server, mock)
    }

    pub fn forget(&self) {
        self.sessions.lock().unwrap().clear();
    }

    pub fn live(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    fn answer(&self, session: Option<&str>, body: serde_json::Value) -> Reply {
        let mut headers = vec![];
        if let Some(s) = session {
            headers.push(("mcp-session-id".to_owned(), s.to_owned()));
        }
        if self.sse {
            headers.push(("content-type".to_owned(), "text/event-stream".to_owned()));
            return Reply::Full {
                status: 200,
                headers,
                body: format!("event: message\ndata: {body}\n\n").into_bytes(),
            };
        }
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
        Reply::Full {
            status: 200,
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    fn handle(&self, req: &Received) -> Reply {
        let msg = req.json();
        let sid = req.header("mcp-session-id").map(str::to_owned);
        if req.method == "POST" && msg["method"] == "initialize" {
            let id = format!(
                "{}-{}",
                self.prefix,
                self.next.fetch_add(1, Ordering::Relaxed)
            );
            self.sessions.lock().unwrap().insert(id.clone());
            let result = json!({"jsonrpc":"2.0","id":msg["id"],"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":self.prefix,"version":"1"}}});
            return self.answer(Some(&id), result);
        }
        let Some(sid) = sid else {
            return Reply::status(
                400,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#,
            );
        };
        if !self.sessions.lock().unwrap().contains(&sid) {
            return Reply::status(
                404,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#,
            );
        }
        match req.method.as_str() {
            "DELETE" => {
                self.sessions.lock().unwrap().remove(&sid);
                Reply::Full { status: 200, headers: vec![], body: vec![] }
            }
            "GET" => Reply::Sse { chunks: vec![(Duration::ZERO, format!("data: {{\"session\":\"{sid}\"}}\n\n"))], hold: true },
            _ if msg.get("id").is_none() => Reply::Full { status: 202, headers: vec![], body: vec![] },
            // The upstream echoes the session it saw, so tests can check the mapping.
            _ => self.answer(Some(&sid), json!({"jsonrpc":"2.0","id":msg["id"],"result":{"session":sid,"upstream":self.prefix}})),
        }
    }
}
