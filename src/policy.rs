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
//!
//! Bounded: an evaluation runs on the blocking pool, never on an HTTP worker,
//! under regorus's execution timer (`policy_timeout_ms`); one that runs
//! longer is stopped and the request refused. At most one evaluation per CPU
//! runs at a time; a request that cannot start one within the limit is
//! refused too.

use std::{num::NonZeroU32, path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

/// Claims a policy can never set: the registered ones.
const RESERVED_CLAIMS: [&str; 15] = [
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
    "act",
    "may_act",
    "ext_sub",
    "ext_iss",
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
    timeout: Duration,
    running: Arc<Semaphore>,
    text: ArcSwap<String>,
    loaded: ArcSwap<Loaded>,
}

impl Policy {
    /// Loads `path`, to be evaluated within `timeout` each time; an invalid
    /// policy is an error here, at start.
    pub fn load(
        path: PathBuf,
        allowed_claims: Vec<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
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
        let engine = compile(&path, &text, timeout)?;
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            path,
            allowed_claims,
            timeout,
            running: Arc::new(Semaphore::new(cpus)),
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
        let loaded = match compile(&self.path, &text, self.timeout) {
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

    /// Evaluates the policy for `input` on the blocking pool, within the
    /// time limit (also for starting: at most one evaluation per CPU runs).
    pub async fn evaluate_bounded(self: Arc<Self>, input: Value) -> Result<Decision, PolicyError> {
        let limit = self.timeout;
        let too_slow = || {
            PolicyError::Unavailable(format!(
                "the evaluation did not finish within policy_timeout_ms ({} ms)",
                limit.as_millis()
            ))
        };
        let permit = tokio::time::timeout(limit, Arc::clone(&self.running).acquire_owned())
            .await
            .map_err(|_| too_slow())?
            .map_err(|_| PolicyError::Unavailable("the evaluator is shut down".into()))?;
        let evaluation = tokio::task::spawn_blocking(move || {
            // Held until the evaluation really ends, even if nobody waits for it.
            let _permit = permit;
            self.evaluate(&input)
        });
        // The execution timer stops the evaluation; this is the backstop for a
        // builtin that does not check it.
        match tokio::time::timeout(limit * 2 + Duration::from_millis(50), evaluation).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(PolicyError::Unavailable(format!(
                "the evaluation failed: {e}"
            ))),
            Err(_) => Err(too_slow()),
        }
    }

    /// Evaluates the policy for `input` on this thread (stopped by the
    /// execution timer after `policy_timeout_ms`).
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

fn compile(
    path: &std::path::Path,
    text: &str,
    timeout: Duration,
) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: timeout,
        check_interval: NonZeroU32::MIN,
    });
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
        let p = Policy::load(
            path,
            claims.iter().map(|c| (*c).to_owned()).collect(),
            Duration::from_millis(500),
        );
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

    const ENDLESS: &str = r#"
package portcullis
import rego.v1
pairs := count([x | some x in numbers.range(1, 100000); some y in numbers.range(1, 100000); x == y + 100000])
decision := {"allow": pairs == 0}
"#;

    #[tokio::test]
    async fn an_evaluation_that_runs_too_long_is_stopped() {
        let p = Arc::new(policy(ENDLESS, &[]).unwrap());
        let started = std::time::Instant::now();
        let result = Arc::clone(&p).evaluate_bounded(serde_json::json!({})).await;
        assert!(
            matches!(&result, Err(PolicyError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped promptly"
        );
        // The permit came back: a fast policy still evaluates.
        let fast = Arc::new(policy(NARROW, &["team"]).unwrap());
        let input =
            serde_json::json!({"client": {"client_id": "a", "client_name": "x"}, "scopes": []});
        assert!(fast.evaluate_bounded(input).await.is_ok());
    }
}
