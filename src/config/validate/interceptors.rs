//! `interceptors:` — the rule file (or inline rules), loaded and validated with the config.

use super::invalid;
use crate::config::raw::RawInterceptors;
use crate::config::{ConfigError, InterceptorsConfig, UpstreamConfig};
use crate::interceptor::RuleSet;

/// Loads the rules now, so a bad rule file fails `check-config` and start-up alike.
pub(super) fn validate(
    raw: RawInterceptors,
    upstreams: &[UpstreamConfig],
) -> Result<InterceptorsConfig, ConfigError> {
    let (rules, rules_file) = match (raw.rules_file, raw.rules) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "interceptors",
                "give rules_file or rules, not both",
            ))
        }
        (Some(file), None) => {
            let path = std::path::PathBuf::from(file);
            let rules =
                RuleSet::load(&path).map_err(|e| invalid("interceptors.rules_file", e.0))?;
            (rules, Some(path))
        }
        (None, Some(value)) => (
            RuleSet::from_yaml_value(value).map_err(|e| invalid("interceptors", e.0))?,
            None,
        ),
        (None, None) => (RuleSet::default(), None),
    };
    if raw.watch && rules_file.is_none() {
        return Err(invalid("interceptors.watch", "needs rules_file"));
    }
    for rule in rules.rules() {
        if let Some(u) = rule.upstream() {
            if !upstreams.iter().any(|c| c.name == u) {
                return Err(invalid(
                    "interceptors",
                    format!(
                        "rule {:?}: match.upstream {u:?} is not a configured upstream",
                        rule.name
                    ),
                ));
            }
        }
    }
    Ok(InterceptorsConfig {
        rules,
        rules_file,
        watch: raw.watch,
    })
}
