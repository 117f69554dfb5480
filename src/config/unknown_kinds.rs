//! A connection of an ERP kind this build does not know fails the whole parse (serde
//! stops at the unknown variant), which would hide every other problem of the file. When
//! that is the only kind of parse error, the configuration is read again with those
//! connections' kinds set aside, so `check-config` still reports everything else at once.

use super::{Config, Problem};
use crate::domain::ErpKind;
use figment::Figment;
use figment::value::Value;

/// `problems` (the parse's), and when they are all unknown ERP kinds, every other problem
/// of the configuration too.
pub fn with_the_rest(fig: &Figment, problems: Vec<Problem>) -> Vec<Problem> {
    let unknown: Option<Vec<usize>> = problems.iter().map(|p| connection_of_erp_key(&p.key)).collect();
    let Some(indexes) = unknown.filter(|i| !i.is_empty()) else { return problems };
    let Ok(mut value) = fig.extract::<Value>() else { return problems };
    let Some(Value::Array(_, connections)) = find_connections(&mut value) else { return problems };
    let mut named = Vec::new();
    for &i in &indexes {
        let Some(Value::Dict(_, conn)) = connections.get_mut(i) else { return problems };
        let kind = conn.get("erp").and_then(Value::as_str).unwrap_or_default().to_owned();
        let known: Vec<&str> = ErpKind::ALL.iter().map(|k| k.as_str()).collect();
        named.push(Problem {
            key: format!("connections[{i}].erp"),
            message: format!("unknown ERP kind {kind:?}: one of {}", known.join(", ")),
        });
        // Stand-in values, so the rest parses; what they would report is dropped below.
        conn.insert("erp".into(), Value::from(ErpKind::GenericRest.as_str()));
        conn.entry("base_url".into()).or_insert_with(|| Value::from("http://unknown.invalid"));
    }
    let Ok(config) = value.deserialize::<Config>() else { return problems };
    let stand_ins: Vec<String> = indexes.iter().map(|i| format!("connections[{i}].")).collect();
    named.extend(config.validate().into_iter().filter(|p| !stand_ins.iter().any(|s| p.key.starts_with(s))));
    named
}

/// `i` when `key` is a connection's `erp` (`connections.i.erp`, as the parse names it).
fn connection_of_erp_key(key: &str) -> Option<usize> {
    let rest = key.strip_prefix("connections.")?;
    let (index, field) = rest.split_once('.')?;
    (field == "erp").then(|| index.parse().ok()).flatten()
}

fn find_connections(value: &mut Value) -> Option<&mut Value> {
    match value {
        Value::Dict(_, dict) => dict.get_mut("connections"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_kind_hides_no_other_problem() {
        let text = r#"
            [queue]
            wait_time_secs = 30
            [[connections]]
            id = "odoo"
            erp = "odoo"
            [[connections]]
            id = "qbo"
            erp = "quickbooks_online"
        "#;
        let problems = super::super::Config::from_toml(text).unwrap_err().0;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"connections[0].erp"), "{keys:?}");
        assert!(keys.contains(&"queue.wait_time_secs"), "{keys:?}");
        assert!(keys.contains(&"connections[1].realm_id"), "{keys:?}");
        assert!(!keys.iter().any(|k| k.starts_with("connections[0].") && *k != "connections[0].erp"), "{keys:?}");
        let erp = problems.iter().find(|p| p.key == "connections[0].erp").unwrap();
        assert!(erp.message.contains("\"odoo\"") && erp.message.contains("sage_intacct"), "{}", erp.message);
    }
}
