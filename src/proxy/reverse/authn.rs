//! Bearer tokens in the request path (with `auth:`): 401/403 with RFC 6750 challenges before
//! any upstream contact, the token's subject as the session principal, scopes per call.

use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use super::{principal, respond, McpProxy};
use crate::auth::{AuthError, Authenticator, Identity};

// === impl McpProxy ===

impl McpProxy {
    /// RFC 9728 protected-resource metadata, public by design (clients read it to learn where
    /// to log in). `Ok(true)`: served.
    pub(super) async fn serve_metadata(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(auth) = &self.auth else {
            return Ok(false);
        };
        let req = session.req_header();
        let path = req.uri.path();
        if req.method != http::Method::GET || !auth.metadata_paths().iter().any(|p| p == path) {
            return Ok(false);
        }
        let body = auth.metadata();
        let cors = [("access-control-allow-origin", "*")];
        respond::send(session, 200, "application/json", body, &cors, false).await?;
        ctx.status = 200;
        ctx.method_label = "metadata";
        Ok(true)
    }

    /// Bearer-token check (when `auth:` is set): the token's subject becomes the principal,
    /// and the scopes the call needs are checked once the method and tool are known.
    pub(super) async fn authorize(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        auth: &Authenticator,
    ) -> Result<Option<bool>> {
        let header = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let checked = match auth.authenticate(header).await {
            Ok(identity) => match check_calls(auth, &identity, &ctx.calls) {
                Ok(()) => {
                    let who = format!(
                        "{}\0{}",
                        self.config.auth.as_ref().map_or("", |a| a.issuer.as_str()),
                        identity.subject
                    );
                    ctx.principal = principal::principal_of(Some(who.as_bytes()));
                    ctx.identity = Some(identity);
                    return Ok(None);
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let challenge = auth.challenge(&checked);
        let status = checked.status();
        let extra = [("www-authenticate", challenge.as_str())];
        let close = !session.is_body_done();
        respond::jsonrpc_error(
            session,
            status,
            ctx.reply_id(),
            crate::mcp::ErrorCode::Unauthorized,
            checked.message(),
            &extra,
            close,
        )
        .await?;
        ctx.status = status;
        let failure = match checked {
            AuthError::Missing => "auth_missing",
            AuthError::Invalid(_) => "auth_invalid",
            AuthError::InsufficientScope(_) => "auth_scope",
        };
        ctx.failure = Some(failure);
        ctx.trace_event("shadowcat.auth_refused", &[("shadowcat.rule", failure)]);
        Ok(Some(true))
    }
}

/// The scopes every call of the body needs (a body not read yet: the rules for any method).
pub(super) fn check_calls(
    auth: &Authenticator,
    identity: &Identity,
    calls: &[(Box<str>, Option<Box<str>>)],
) -> std::result::Result<(), AuthError> {
    if calls.is_empty() {
        return auth.check_scopes(identity, None, None);
    }
    calls
        .iter()
        .try_for_each(|(m, n)| auth.check_scopes(identity, Some(m), n.as_deref()))
}
