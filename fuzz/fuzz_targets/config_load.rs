//! Fuzzes config loading: any text is either a valid config or a one-line error naming a
//! field; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = shadowcat::config::from_yaml_str(text) {
        let line = e.to_string();
        assert!(!line.contains('\n'), "errors are one line: {line:?}");
        assert!(!e.field().is_empty());
    }
});
