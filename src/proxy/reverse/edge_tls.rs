//! What a TLS listener means to the proxy phases: the client certificate's principal, and
//! `Strict-Transport-Security` on responses.
//!
//! The accept layer (`server::tls`) terminates TLS and records a verified client
//! certificate's identity by the connection's address pair (`tls::PeerIdentities`: HTTP/2
//! streams carry no per-connection value the application can set). The first phase looks it
//! up; `route_session` makes it the principal when no bearer auth is configured, so sessions
//! and rate limits bind to it as they do to a token.
//!
//! HSTS is a downstream module, installed only when `security.hsts` is set: every response
//! head the proxy writes passes through the modules (proxied, local answers, the direct
//! exchange alike), so no path can miss it. The first phase tells the module whether the
//! connection is TLS; HSTS on plaintext is meaningless (RFC 6797 section 7.2).

use std::any::Any;

use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::proxy::Session;

use super::principal::{principal_of_certificate, Principal};
use crate::tls::PeerIdentities;

/// Whether the request came over TLS.
pub fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The principal of the connection's verified client certificate, if it sent one.
pub fn client_principal(peers: &PeerIdentities, session: &Session) -> Option<Principal> {
    if peers.is_empty() {
        return None;
    }
    let local = *session.server_addr()?.as_inet()?;
    let peer = *session.client_addr()?.as_inet()?;
    peers
        .get(local, peer)
        .map(|identity| principal_of_certificate(&identity))
}

/// Adds `Strict-Transport-Security` to responses on TLS connections.
#[derive(Debug)]
pub struct Hsts {
    value: HeaderValue,
    /// Set by the first phase; stays false on plaintext listeners.
    tls: bool,
}

impl Hsts {
    /// Marks this request's module as being on a TLS connection.
    pub fn mark(session: &mut Session) {
        let tls = is_tls(session);
        if let Some(m) = session.downstream_modules_ctx.get_mut::<Hsts>() {
            m.tls = tls;
        }
    }
}

#[async_trait]
impl HttpModule for Hsts {
    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> pingora::Result<()> {
        if self.tls && !resp.status.is_informational() {
            resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, self.value.clone())?;
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

/// Builds an [`Hsts`] context per request.
#[derive(Debug)]
pub struct HstsBuilder(pub HeaderValue);

impl HttpModuleBuilder for HstsBuilder {
    fn init(&self) -> Module {
        Box::new(Hsts {
            value: self.0.clone(),
            tls: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hsts_goes_on_final_heads_over_tls_only() {
        let value = HeaderValue::from_static("max-age=60");
        let mut module = HstsBuilder(value).init();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        module
            .response_header_filter(&mut resp, false)
            .await
            .unwrap();
        assert!(resp.headers.get("strict-transport-security").is_none());

        let hsts = module.as_any_mut().downcast_mut::<Hsts>().unwrap();
        hsts.tls = true;
        let mut interim = ResponseHeader::build(100, None).unwrap();
        module
            .response_header_filter(&mut interim, false)
            .await
            .unwrap();
        assert!(interim.headers.get("strict-transport-security").is_none());
        module
            .response_header_filter(&mut resp, false)
            .await
            .unwrap();
        assert_eq!(resp.headers["strict-transport-security"], "max-age=60");
    }
}
