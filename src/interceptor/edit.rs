//! Applying a decision to a message: JSON-pointer `set`/`remove`, and `hide_tools` on a
//! `tools/list` result.

use serde_json::{Map, Value};

use crate::glob::Glob;

/// Sets `value` at `pointer`, creating objects along the way (array indexes must exist).
pub fn set(target: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *target = value;
        return Ok(());
    }
    let tokens: Vec<String> = pointer[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or("empty pointer")?;
    let mut at = target;
    for t in parents {
        at = match at {
            Value::Object(map) => map
                .entry(t.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => t
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("{pointer}: no array element {t}"))?,
            _ => return Err(format!("{pointer}: {t} is inside a scalar")),
        };
    }
    match at {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(format!("{pointer}: no array element {last}")),
        },
        _ => Err(format!("{pointer}: parent is a scalar")),
    }
}

/// Removes what `pointer` names; nothing there is not an error.
pub fn remove(target: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Drops tools whose names match from a `tools/list` result (`{"tools": [{"name": ...}]}`);
/// returns how many were hidden.
pub fn hide_tools(result: &mut Value, hide: &[&Glob]) -> usize {
    let Some(Value::Array(tools)) = result.get_mut("tools") else {
        return 0;
    };
    let before = tools.len();
    tools.retain(|t| {
        !t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| hide.iter().any(|g| g.matches(n)))
    });
    before - tools.len()
}
