//! Mapping rules: which Portcullis client a verified federated token stands
//! for. A [`Rule`] names the client and matches the token's `sub` exactly
//! (`sub`), by a pattern (`sub_pattern`, where `*` stands for any run of
//! characters: `system:serviceaccount:payments:*`,
//! `spiffe://example.org/ns/pay/*`), and/or by conditions on other claims
//! (`claims`: every named claim must equal one of the listed patterns, such
//! as GitHub Actions' `repository`, `ref`, `environment`,
//! `job_workflow_ref`). The first rule that matches wins; it may narrow the
//! scope the client is granted.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{clients::ClientId, oauth::scope::ScopeSet};

/// One mapping rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The client the token maps to.
    pub client_id: String,
    /// `sub` must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `sub` must match this pattern (`*` = any characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_pattern: Option<String>,
    /// Each claim must be a string matching one of the patterns.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// Narrows the granted scope to these (space-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A token's mapping: the client, the narrowing, and what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The client.
    pub client_id: String,
    /// The scope the mapping allows at most (`None`: the client's own).
    pub scope: Option<ScopeSet>,
    /// `rules[i]` or `rego`, for the audit trail.
    pub by: String,
}

/// Longest pattern or value, in bytes.
const MAX_PATTERN: usize = 512;

impl Rule {
    /// Checks the rule: a valid client id, and at least one condition on the
    /// token (a rule matching every token of an issuer must say so with
    /// `sub_pattern: "*"`).
    pub fn validate(&self) -> Result<(), String> {
        ClientId::parse(&self.client_id).map_err(|e| format!("client_id: {e}"))?;
        if self.sub.is_none() && self.sub_pattern.is_none() && self.claims.is_empty() {
            return Err("a rule needs sub, sub_pattern or claims (use sub_pattern \"*\" to match every token)".into());
        }
        if self.sub.is_some() && self.sub_pattern.is_some() {
            return Err("give sub or sub_pattern, not both".into());
        }
        for text in self.sub.iter().chain(&self.sub_pattern) {
            if text.is_empty() || text.len() > MAX_PATTERN {
                return Err(format!(
                    "sub and sub_pattern must be 1 to {MAX_PATTERN} bytes"
                ));
            }
        }
        for (name, want) in &self.claims {
            let ok = match want {
                Value::String(s) => !s.is_empty() && s.len() <= MAX_PATTERN,
                Value::Array(items) => {
                    !items.is_empty()
                        && items.iter().all(|i| {
                            i.as_str()
                                .is_some_and(|s| !s.is_empty() && s.len() <= MAX_PATTERN)
                        })
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "claims.{name} must be a pattern or a non-empty list of patterns (strings)"
                ));
            }
        }
        if let Some(scope) = &self.scope {
            ScopeSet::parse(scope).map_err(|e| format!("scope: {e}"))?;
        }
        Ok(())
    }

    /// Whether the token with `claims` matches.
    #[must_use]
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        let sub = claims.get("sub").and_then(Value::as_str);
        if let Some(want) = &self.sub {
            if sub != Some(want.as_str()) {
                return false;
            }
        }
        if let Some(pattern) = &self.sub_pattern {
            if !sub.is_some_and(|s| glob(pattern, s)) {
                return false;
            }
        }
        self.claims.iter().all(|(name, want)| {
            let Some(have) = claims.get(name).and_then(Value::as_str) else {
                return false;
            };
            match want {
                Value::String(p) => glob(p, have),
                Value::Array(ps) => ps.iter().filter_map(Value::as_str).any(|p| glob(p, have)),
                _ => false,
            }
        })
    }
}

/// The first rule matching `claims`.
#[must_use]
pub fn first_match(rules: &[Rule], claims: &Map<String, Value>) -> Option<Mapping> {
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(claims))
        .map(|(i, r)| Mapping {
            client_id: r.client_id.clone(),
            scope: r.scope.as_deref().and_then(|s| ScopeSet::parse(s).ok()),
            by: format!("rules[{i}]"),
        })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (also none) and every other character itself. Greedy with backtracking
/// to the last `*` only, so linear in practice and never exponential.
#[must_use]
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(map) = v else {
            panic!("claims must be an object")
        };
        map
    }

    #[test]
    fn glob_star_matches_any_run() {
        assert!(glob(
            "system:serviceaccount:payments:*",
            "system:serviceaccount:payments:api"
        ));
        assert!(!glob(
            "system:serviceaccount:payments:*",
            "system:serviceaccount:billing:api"
        ));
        assert!(glob(
            "spiffe://example.org/ns/pay/*",
            "spiffe://example.org/ns/pay/sa/api"
        ));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a-b-b-c"));
        assert!(!glob("a*b*c", "a-b-b-"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("refs/heads/*", "refs/heads/main"));
        // No catastrophic backtracking on adversarial input.
        let long = "a".repeat(5000);
        assert!(!glob(&format!("{}b", "*a".repeat(50)), &long));
    }

    #[test]
    fn the_first_matching_rule_wins_and_every_condition_must_hold() {
        let rules = vec![
            rule(json!({"client_id": "deploy", "claims": {
                "repository": "acme/shop", "ref": "refs/heads/main", "environment": ["prod", "staging"]}})),
            rule(
                json!({"client_id": "pay", "sub_pattern": "system:serviceaccount:pay:*", "scope": "read"}),
            ),
            rule(json!({"client_id": "api", "sub": "spiffe://example.org/api"})),
        ];
        let gh = claims(
            json!({"sub": "repo:acme/shop:environment:prod", "repository": "acme/shop",
            "ref": "refs/heads/main", "environment": "prod"}),
        );
        assert_eq!(first_match(&rules, &gh).unwrap().client_id, "deploy");
        let mut other_branch = gh.clone();
        other_branch.insert("ref".into(), json!("refs/heads/feature"));
        assert_eq!(first_match(&rules, &other_branch), None);
        let mut no_env = gh.clone();
        no_env.remove("environment");
        assert_eq!(
            first_match(&rules, &no_env),
            None,
            "a missing claim never matches"
        );
        let k8s = claims(json!({"sub": "system:serviceaccount:pay:worker"}));
        let m = first_match(&rules, &k8s).unwrap();
        assert_eq!((m.client_id.as_str(), m.by.as_str()), ("pay", "rules[1]"));
        assert_eq!(m.scope.unwrap().to_string(), "read");
        assert!(first_match(
            &rules,
            &claims(json!({"sub": "spiffe://example.org/api/x"}))
        )
        .is_none());
        assert!(first_match(&rules, &claims(json!({"sub": 7}))).is_none());
    }

    #[test]
    fn bad_rules_are_named() {
        let cases = [
            (json!({"client_id": "a"}), "needs"),
            (json!({"client_id": "a b", "sub": "x"}), "client_id"),
            (
                json!({"client_id": "a", "sub": "x", "sub_pattern": "y"}),
                "not both",
            ),
            (json!({"client_id": "a", "sub": ""}), "bytes"),
            (
                json!({"client_id": "a", "claims": {"ref": 1}}),
                "claims.ref",
            ),
            (
                json!({"client_id": "a", "claims": {"ref": []}}),
                "claims.ref",
            ),
            (
                json!({"client_id": "a", "sub": "x", "scope": "a\"b"}),
                "scope",
            ),
        ];
        for (v, word) in cases {
            let err = rule(v.clone()).validate().unwrap_err();
            assert!(err.contains(word), "{v}: {err}");
        }
    }
}
