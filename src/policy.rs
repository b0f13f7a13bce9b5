//! Token policy in Rego ([OPA](https://www.openpolicyagent.org/) style),
//! evaluated in-process with regorus at every token issuance.
//!
//! The policy defines `data.portcullis.decision`, an object with `allow`
//! (bool), `reason` (text for the error and the audit trail), and optionally
//! `scopes` (narrows the granted scopes) and `claims` (added to the token;
//! only names from `policy_claims`). The input is the client's registration,
//! the requested scopes and audiences, the source address, the authentication
//! method, the certificate identity (when present) and the time.
//!
//! Fail closed: a policy that does not load, does not evaluate, or yields no
//! decision denies every token until it is fixed. The file is re-read when it
//! changes.

use std::{path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};

/// Claims a policy can never set: the registered ones.
const RESERVED_CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "typ",
];

/// What the policy decided for an allowed request.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Scopes to grant instead (only ever fewer).
    pub scopes: Option<Vec<String>>,
    /// Claims to add to the access token.
    pub claims: Map<String, Value>,
}

/// Why a request was not allowed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy denied it, for this reason.
    #[error("{0}")]
    Denied(String),
    /// The policy could not be loaded or evaluated (fail closed).
    #[error("the token policy is unavailable: {0}")]
    Unavailable(String),
}

enum Loaded {
    Ready(Box<regorus::Engine>),
    Broken(String),
}

/// The loaded policy.
pub struct Policy {
    path: PathBuf,
    allowed_claims: Vec<String>,
    text: ArcSwap<String>,
    loaded: ArcSwap<Loaded>,
}

impl Policy {
    /// Loads `path`; an invalid policy is an error here, at start.
    pub fn load(path: PathBuf, allowed_claims: Vec<String>) -> Result<Self, String> {
        if let Some(bad) = allowed_claims
            .iter()
            .find(|c| RESERVED_CLAIMS.contains(&c.as_str()))
        {
            return Err(format!(
                "policy_claims: {bad:?} is a registered claim a policy may not set"
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("policy_file {}: {e}", path.display()))?;
        let engine = compile(&path, &text)?;
        Ok(Self {
            path,
            allowed_claims,
            text: ArcSwap::from_pointee(text),
            loaded: ArcSwap::from_pointee(Loaded::Ready(Box::new(engine))),
        })
    }

    /// Re-reads the file; when it changed, compiles it. A broken new version
    /// replaces the old one too, so it fails closed. Returns whether it changed.
    pub fn reload_if_changed(&self) -> bool {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => format!("<unreadable: {e}>"),
        };
        if **self.text.load() == text {
            return false;
        }
        let loaded = match compile(&self.path, &text) {
            Ok(engine) => {
                tracing::info!(path = %self.path.display(), "token policy reloaded");
                Loaded::Ready(Box::new(engine))
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "token policy is broken: every token request is denied until it is fixed");
                Loaded::Broken(e)
            }
        };
        self.text.store(Arc::new(text));
        self.loaded.store(Arc::new(loaded));
        true
    }

    /// Evaluates the policy for `input`.
    pub fn evaluate(&self, input: &Value) -> Result<Decision, PolicyError> {
        let loaded = self.loaded.load();
        let engine = match &**loaded {
            Loaded::Ready(engine) => engine,
            Loaded::Broken(e) => return Err(PolicyError::Unavailable(e.clone())),
        };
        let mut engine = (**engine).clone();
        let input = regorus::Value::from_json_str(&input.to_string())
            .map_err(|e| PolicyError::Unavailable(e.to_string()))?;
        engine.set_input(input);
        let result = engine
            .eval_rule("data.portcullis.decision".to_owned())
            .map_err(|e| PolicyError::Unavailable(format!("evaluation failed: {e}")))?;
        let json = result
            .to_json_str()
            .map_err(|e| PolicyError::Unavailable(e.to_string()))?;
        let decision: Value =
            serde_json::from_str(&json).map_err(|e| PolicyError::Unavailable(e.to_string()))?;
        self.interpret(&decision)
    }

    fn interpret(&self, decision: &Value) -> Result<Decision, PolicyError> {
        let Some(obj) = decision.as_object() else {
            return Err(PolicyError::Unavailable(
                "data.portcullis.decision is undefined or not an object".into(),
            ));
        };
        if obj.get("allow") != Some(&Value::Bool(true)) {
            let reason = obj
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("denied by policy");
            return Err(PolicyError::Denied(reason.to_owned()));
        }
        let scopes = match obj.get("scopes") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        PolicyError::Unavailable(
                            "decision.scopes must be an array of strings".into(),
                        )
                    })?,
            ),
            Some(_) => {
                return Err(PolicyError::Unavailable(
                    "decision.scopes must be an array of strings".into(),
                ))
            }
        };
        let claims = match obj.get("claims") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(c)) => {
                if let Some(bad) = c.keys().find(|k| !self.allowed_claims.contains(k)) {
                    return Err(PolicyError::Unavailable(format!(
                        "decision.claims sets {bad:?}, which is not in policy_claims"
                    )));
                }
                c.clone()
            }
            Some(_) => {
                return Err(PolicyError::Unavailable(
                    "decision.claims must be an object".into(),
                ))
            }
        };
        Ok(Decision { scopes, claims })
    }
}

fn compile(path: &std::path::Path, text: &str) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy(path.display().to_string(), text.to_owned())
        .map_err(|e| format!("policy {} does not compile: {e}", path.display()))?;
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str, claims: &[&str]) -> Result<Policy, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.rego");
        std::fs::write(&path, text).unwrap();
        let p = Policy::load(path, claims.iter().map(|c| (*c).to_owned()).collect());
        std::mem::forget(dir);
        p
    }

    const NARROW: &str = r#"
package portcullis
import rego.v1
default decision := {"allow": false, "reason": "no rule matched"}
decision := {"allow": true, "scopes": [s | some s in input.scopes; s != "admin"], "claims": {"team": input.client.client_name}} if {
    input.client.client_id != "blocked"
}
"#;

    #[test]
    fn a_policy_can_allow_narrow_add_claims_and_deny() {
        let p = policy(NARROW, &["team"]).unwrap();
        let d = p.evaluate(&serde_json::json!({"client": {"client_id": "a", "client_name": "payments"}, "scopes": ["read", "admin"]})).unwrap();
        assert_eq!(d.scopes, Some(vec!["read".to_owned()]));
        assert_eq!(d.claims["team"], "payments");
        let denied =
            p.evaluate(&serde_json::json!({"client": {"client_id": "blocked"}, "scopes": []}));
        assert_eq!(denied, Err(PolicyError::Denied("no rule matched".into())));
    }

    #[test]
    fn broken_or_overreaching_policies_fail_closed() {
        assert!(policy("package portcullis\nthis is not rego", &[]).is_err());
        assert!(
            policy(NARROW, &["sub"]).is_err(),
            "registered claims are reserved"
        );
        let p = policy(NARROW, &[]).unwrap();
        let input =
            serde_json::json!({"client": {"client_id": "a", "client_name": "x"}, "scopes": []});
        assert!(
            matches!(p.evaluate(&input), Err(PolicyError::Unavailable(_))),
            "claim not allow-listed"
        );
        let none = policy("package portcullis\nimport rego.v1\nother := 1", &[]).unwrap();
        assert!(
            matches!(none.evaluate(&input), Err(PolicyError::Unavailable(_))),
            "no decision"
        );
    }
}
