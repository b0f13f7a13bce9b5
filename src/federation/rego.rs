//! A federation's Rego mapping, evaluated in-process with regorus like the
//! token policy ([`crate::policy`]). The module defines
//! `data.portcullis.federation.client_id` (the client a token maps to;
//! undefined = no match) and optionally `data.portcullis.federation.scopes`
//! (narrows the scope). The input is `{"issuer", "federation", "claims"}`:
//! the verified token's claims. Evaluations run on the blocking pool under
//! regorus's execution timer; one that fails or overruns maps to nothing
//! (the request is refused, never granted).

use std::{num::NonZeroU32, time::Duration};

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::{json, Map, Value};

use super::rules::Mapping;
use crate::oauth::scope::ScopeSet;

/// Compiles a federation's module (at registration, to refuse a broken one).
pub fn compile(federation_id: &str, text: &str) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy(format!("federation-{federation_id}.rego"), text.to_owned())
        .map_err(|e| format!("rego does not compile: {e}"))?;
    Ok(engine)
}

/// Evaluates the module for a verified token; `Ok(None)` when it names no
/// client. Errors are for the log.
pub async fn evaluate(
    federation_id: &str,
    issuer: &str,
    text: &str,
    claims: &Map<String, Value>,
    limit: Duration,
) -> Result<Option<Mapping>, String> {
    let input = json!({ "issuer": issuer, "federation": federation_id, "claims": claims });
    let (id, text) = (federation_id.to_owned(), text.to_owned());
    let run = tokio::task::spawn_blocking(move || evaluate_now(&id, &text, &input, limit));
    match tokio::time::timeout(limit * 2 + Duration::from_millis(50), run).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the evaluation failed: {e}")),
        Err(_) => Err("the evaluation did not finish in time".into()),
    }
}

fn evaluate_now(
    federation_id: &str,
    text: &str,
    input: &Value,
    limit: Duration,
) -> Result<Option<Mapping>, String> {
    let mut engine = compile(federation_id, text)?;
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::MIN,
    });
    engine.set_input(regorus::Value::from_json_str(&input.to_string()).map_err(|e| e.to_string())?);
    let mut rule = |name: &str| -> Result<Value, String> {
        let value = engine
            .eval_rule(format!("data.portcullis.federation.{name}"))
            .map_err(|e| e.to_string())?;
        if value == regorus::Value::Undefined {
            return Ok(Value::Null);
        }
        serde_json::from_str(&value.to_json_str().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let client_id = rule("client_id")?;
    let Some(client_id) = client_id.as_str() else {
        return Ok(None);
    };
    let scopes = rule("scopes")?;
    let scope = match &scopes {
        Value::Null => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|s| s.as_str().and_then(|s| ScopeSet::parse(s).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or("scopes must be an array of scope names")?
                .iter()
                .flat_map(|s| s.iter().map(str::to_owned).collect::<Vec<_>>())
                .collect(),
        ),
        _ => return Err("scopes must be an array of scope names".into()),
    };
    Ok(Some(Mapping {
        client_id: client_id.to_owned(),
        scope,
        by: "rego".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &str = r#"
package portcullis.federation
import rego.v1

client_id := "deployer" if {
    input.claims.repository_owner == "acme"
    startswith(input.claims.ref, "refs/tags/v")
}

scopes := ["deploy"] if { input.claims.environment == "prod" }
"#;

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(map) = v else {
            panic!("claims must be an object")
        };
        map
    }

    #[tokio::test]
    async fn a_module_names_the_client_and_may_narrow_the_scope() {
        let limit = Duration::from_millis(500);
        let c = claims(
            json!({"repository_owner": "acme", "ref": "refs/tags/v1.2", "environment": "prod"}),
        );
        let m = evaluate(
            "gh",
            "https://token.actions.githubusercontent.com",
            MODULE,
            &c,
            limit,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(m.client_id, "deployer");
        assert_eq!(m.scope.unwrap().to_string(), "deploy");
        assert_eq!(m.by, "rego");
        let c = claims(json!({"repository_owner": "evil", "ref": "refs/tags/v1.2"}));
        assert_eq!(evaluate("gh", "i", MODULE, &c, limit).await.unwrap(), None);
    }

    #[test]
    fn a_broken_module_is_refused_at_registration() {
        assert!(compile("x", "package p\nallow {").is_err());
        assert!(compile("x", MODULE).is_ok());
    }
}
