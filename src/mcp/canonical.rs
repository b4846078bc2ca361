//! JSON text in one canonical form (object keys sorted), so equal parameters compare equal
//! whatever key order a client sent: the cache's keys and the tape matcher both use it.

use serde_json::Value;

/// JSON with object keys sorted, whatever order (or feature of `serde_json`) produced them.
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_and_strings_escaped() {
        let v: Value = serde_json::from_str(r#"{"b":[{"z":1,"a":"q\"x"}],"a":null}"#).unwrap();
        let mut out = String::new();
        canonical(&v, &mut out);
        assert_eq!(out, r#"{"a":null,"b":[{"a":"q\"x","z":1}]}"#);
    }
}
