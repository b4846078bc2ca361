//! Fuzzes the tape reader and what reads its result: any bytes, never a panic. A tape that
//! reads is shown, exported as HAR (with every required field) and loaded for replay; its
//! normalized `params` survive a serialize round trip unchanged, and the closest-request
//! search takes any of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowcat::tape::{check, har, replay, show};

fuzz_target!(|data: &[u8]| {
    let Ok(tape) = check::parse(data) else {
        return;
    };
    let _ = show::timeline(&tape);
    let exported = har::export(&tape);
    assert_eq!(har::missing_required(&exported), None, "export lacks a HAR field");
    if let Ok(lib) = replay::Library::from_tapes(std::slice::from_ref(&tape), &["/cursor".into()]) {
        for line in &tape.lines {
            if let Some(m) = line.message_value() {
                let a = lib.normalize(&m["params"]);
                let b = lib.normalize(&serde_json::from_str(&m["params"].to_string()).unwrap());
                assert_eq!(a, b);
                let _ = lib.closest(m["method"].as_str().unwrap_or(""), &a);
            }
        }
    }
});
