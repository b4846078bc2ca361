//! The rule file as written (see `conf/rules.yaml`): serde structs, unknown keys rejected.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub action: RawAction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub from: Option<String>,
    pub kind: Option<String>,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub uri: Option<String>,
    /// JSON pointer (into `params`) → required value.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    pub upstream: Option<String>,
}

/// An action: one of the terminal ones (`block`, `mock`, `drop`) and/or the accumulating ones.
/// `drop` is written as a bare word (`action: drop`), everything else as a map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAction {
    Word(String),
    Map(RawActionMap),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActionMap {
    pub block: Option<RawBlock>,
    pub mock: Option<RawMock>,
    #[serde(default)]
    pub drop: bool,
    pub hide_tools: Option<Vec<String>>,
    /// JSON pointer (into the whole message) → new value.
    pub set: Option<BTreeMap<String, serde_json::Value>>,
    pub remove: Option<Vec<String>>,
    pub delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlock {
    pub code: Option<i64>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    pub result: Option<serde_json::Value>,
    pub error: Option<RawBlock>,
}
