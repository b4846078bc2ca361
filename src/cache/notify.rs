//! Notifications that make cached results stale, read from the data of SSE events an
//! upstream sends (any stream of it: a POST's response stream, the GET stream,
//! `subscriptions/listen`). Most events are responses: a substring test turns them away
//! before any parse.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;

use super::invalidations;

/// What one notification drops: `methods` of the upstream, for `uri` only when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub methods: &'static [&'static str],
    pub uri: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    method: Option<String>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    uri: Option<String>,
}

/// The invalidation an event's data asks for, if it is such a notification.
pub fn invalidation(data: &[u8]) -> Option<Invalidation> {
    // Built once: `memmem::find` builds its searcher on every call, which cost more than the
    // search on every event of every session stream (callgrind, sse_first).
    static LIST_CHANGED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("list_changed"));
    static UPDATED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("resources/updated"));
    if LIST_CHANGED.find(data).is_none() && UPDATED.find(data).is_none() {
        return None;
    }
    // The first line is the first `data:` value: a JSON message on one line, as SDKs send.
    let line = data.split(|b| *b == b'\n').next().unwrap_or(data);
    let wire: Wire = serde_json::from_slice(data)
        .or_else(|_| serde_json::from_slice(line))
        .ok()?;
    let methods = invalidations(wire.method.as_deref()?);
    if methods.is_empty() {
        return None;
    }
    let uri = match wire.method.as_deref() {
        // An update names its resource; without one, nothing can be matched to it.
        Some("notifications/resources/updated") => Some(wire.params?.uri?),
        _ => None,
    };
    Some(Invalidation { methods, uri })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_changed_and_resource_updates_only() {
        let inv = invalidation(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#)
            .unwrap();
        assert_eq!(inv.methods, &["tools/list"]);
        assert_eq!(inv.uri, None);
        let inv = invalidation(
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#,
        )
        .unwrap();
        assert_eq!(inv.methods, &["resources/read"]);
        assert_eq!(inv.uri.as_deref(), Some("file:///a"));
        assert!(
            invalidation(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated"}"#)
                .is_none()
        );
        assert!(
            invalidation(br#"{"jsonrpc":"2.0","id":1,"result":{"text":"list_changed"}}"#).is_none()
        );
        assert!(invalidation(b"list_changed but not json").is_none());
        assert!(invalidation(br#"{"jsonrpc":"2.0","method":"notifications/message"}"#).is_none());
    }
}
