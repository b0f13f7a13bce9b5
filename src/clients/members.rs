//! Which metadata members a registration body may hold, and how one is read.
//!
//! RFC 7591 §2 asks a server to ignore client metadata it does not support,
//! so a client built for another server still registers. That holds here for
//! the names in the IANA "OAuth Dynamic Client Registration Metadata"
//! registry (and for the read-only members of a client's own view, so what
//! `GET` shows can be sent back with `PUT`). Any other name is a typo far more
//! often than an extension: `allowed_audience` would silently register a
//! client that can only ever get `invalid_target`. Such names are refused
//! with `invalid_client_metadata`, naming the member and the closest member
//! this server uses. Type errors name the member too.

use serde_json::Value;

use super::RegistrationRequest;

/// Names in the IANA "OAuth Dynamic Client Registration Metadata" registry
/// (<https://www.iana.org/assignments/oauth-parameters>) that this server
/// does not use: accepted and ignored.
const REGISTERED_ELSEWHERE: &[&str] = &[
    "redirect_uris",
    "response_types",
    "client_uri",
    "logo_uri",
    "contacts",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "software_statement",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
    "application_type",
    "sector_identifier_uri",
    "subject_type",
    "id_token_signed_response_alg",
    "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc",
    "userinfo_signed_response_alg",
    "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc",
    "request_object_signing_alg",
    "request_object_encryption_alg",
    "request_object_encryption_enc",
    "default_max_age",
    "require_auth_time",
    "default_acr_values",
    "initiate_login_uri",
    "request_uris",
    "claims_redirect_uris",
    "nfv_token_signing_alg",
    "nfv_token_encryption_alg",
    "nfv_token_encryption_enc",
    "require_signed_request_object",
    "require_pushed_authorization_requests",
    "introspection_signed_response_alg",
    "introspection_encrypted_response_alg",
    "introspection_encrypted_response_enc",
    "frontchannel_logout_uri",
    "frontchannel_logout_session_required",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
    "post_logout_redirect_uris",
    "authorization_details_types",
    "dpop_bound_access_tokens",
    "authorization_signed_response_alg",
    "authorization_encrypted_response_alg",
    "authorization_encrypted_response_enc",
    "backchannel_token_delivery_mode",
    "backchannel_client_notification_endpoint",
    "backchannel_authentication_request_signing_alg",
    "backchannel_user_code_parameter",
    "client_registration_types",
    "organization_name",
    "signed_jwks_uri",
];

/// Members of a client's view that the server sets: ignored in a request,
/// so the JSON `GET` returned can be sent back with `PUT`.
const READ_ONLY: &[&str] = &["enabled", "updated_at", "locked_until"];

/// The members this server reads (the fields of [`RegistrationRequest`]).
fn used() -> &'static [&'static str] {
    crate::config::keys_of::<RegistrationRequest>()
}

/// Every member name a registration body may hold: those this server uses,
/// the IANA-registered ones it ignores, and the read-only view members.
#[must_use]
pub fn accepted() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = [used(), REGISTERED_ELSEWHERE, READ_ONLY].concat();
    names.sort_unstable();
    names.dedup();
    names
}

/// Why `name` is refused: it is neither used here nor registered; the
/// closest member this server uses is suggested. `None` when it is accepted.
#[must_use]
pub fn refusal(name: &str) -> Option<String> {
    if used().contains(&name) || REGISTERED_ELSEWHERE.contains(&name) || READ_ONLY.contains(&name) {
        return None;
    }
    let closest = used()
        .iter()
        .filter(|known| **known != "client_secret")
        .max_by(|a, b| strsim::jaro_winkler(name, a).total_cmp(&strsim::jaro_winkler(name, b)))
        .copied()
        .unwrap_or("scope");
    Some(format!(
        "unknown client metadata {name:?}: did you mean {closest:?}? (metadata registered with \
         IANA that this server does not use is ignored; other names are refused)"
    ))
}

/// Reads a registration body: a JSON object whose members are all accepted
/// ([`refusal`]), each of the type its field takes. The error names the member.
pub fn parse(body: Value) -> Result<RegistrationRequest, String> {
    let Value::Object(members) = &body else {
        return Err(format!(
            "the request body must be a JSON object of client metadata, not {}",
            kind(&body)
        ));
    };
    if let Some(message) = members.keys().find_map(|name| refusal(name)) {
        return Err(message);
    }
    serde_path_to_error::deserialize(body).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn misspelt_members_are_refused_with_the_closest_used_name() {
        for (typo, closest) in [
            ("allowed_audience", "allowed_audiences"),
            ("scopes", "scope"),
            ("acess_token_ttl", "access_token_ttl"),
            ("grant_type", "grant_types"),
            ("allow_introspect", "allow_introspection"),
        ] {
            let err = parse(json!({ typo: 1 })).unwrap_err();
            assert!(err.contains(&format!("{typo:?}")), "{err}");
            assert!(
                err.contains(&format!("did you mean {closest:?}")),
                "{typo}: {err}"
            );
        }
    }

    #[test]
    fn registered_metadata_and_read_only_view_members_are_ignored() {
        let r = parse(json!({
            "redirect_uris": ["https://x/cb"], "logo_uri": 5, "software_id": "s",
            "client_id_issued_at": 1, "enabled": false, "updated_at": 2, "scope": "a"
        }))
        .unwrap();
        assert_eq!(r.scope.as_deref(), Some("a"));
    }

    #[test]
    fn type_errors_name_the_member() {
        let err = parse(json!({"client_name": "x", "access_token_ttl": "300"})).unwrap_err();
        assert!(err.starts_with("access_token_ttl: invalid type"), "{err}");
        let err = parse(json!({"allowed_audiences": "https://a"})).unwrap_err();
        assert!(err.starts_with("allowed_audiences: invalid type"), "{err}");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for (body, kind) in [
            (json!([]), "an array"),
            (json!(null), "null"),
            (json!("x"), "a string"),
            (json!(3), "a number"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.ends_with(kind), "{err}");
        }
    }
}
