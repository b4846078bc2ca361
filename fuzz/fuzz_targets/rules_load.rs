//! Fuzzes rule loading and evaluation: any text is either a rule set or a one-line error naming
//! the rule, never a panic; a loaded set then judges messages built from the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowcat::interceptor::{plan_event, plan_request, plan_response, Call, RuleSet};
use shadowcat::mcp::peek::peek;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The YAML and a message may share the input: `---8<---` separates them.
    let (yaml, message) = text.split_once("---8<---").unwrap_or((text, ""));
    let rules = match RuleSet::from_yaml(yaml) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "errors are one line: {e}");
            return;
        }
    };
    let body = message.as_bytes();
    if let Ok(p) = peek(body) {
        let plan = plan_request(&rules, body, &p, Some("up"));
        assert!(plan.forwarded <= p.messages().len());
    }
    let calls = [Call {
        id: "1".into(),
        method: "tools/list".into(),
        name: None,
        uri: None,
    }];
    let mut hits = Vec::new();
    let _ = plan_response(&rules, body, &calls, None, &mut hits);
    let _ = plan_event(&rules, body, &calls, None, &mut hits);
});
