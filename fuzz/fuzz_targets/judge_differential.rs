//! Fuzzes the request judge against `serde_json`: whatever the peek accepts (and so policy may
//! decide on), a full `serde_json::Value` parse must accept too and read the same method,
//! `params.name`, `params.uri`, id, kind and batch members. A disagreement is a body that could
//! carry one tool past a rule while the upstream runs another.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = shadowcat::mcp::differential::agrees_with_serde_json(data) {
        panic!("the judge and serde_json disagree: {why}");
    }
});
