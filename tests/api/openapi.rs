//! `openapi.yaml` documents exactly the routes the server has.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

#[test]
fn openapi_lists_exactly_the_served_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_mapping()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_owned();
            item.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| methods.contains(k))
                .map(move |m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String)> = portcullis::http::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();

    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "in openapi.yaml but not served: {phantom:?}"
    );
}

/// `openapi.yaml`, parsed.
fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

/// The `propertyNames` enum of the schema `name`.
fn property_names<'a>(doc: &'a Value, name: &str) -> Vec<&'a str> {
    doc["components"]["schemas"][name]["propertyNames"]["enum"]
        .as_sequence()
        .expect("propertyNames enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// The registration schema's `propertyNames` are exactly the member names
/// the server accepts (used, IANA-registered and ignored, read-only).
#[test]
fn registration_property_names_are_the_accepted_members() {
    let doc = openapi();
    let documented = property_names(&doc, "ClientRegistration");
    assert_eq!(documented, portcullis::clients::members::accepted());
    // Every documented property is accepted.
    for (name, _) in doc["components"]["schemas"]["ClientRegistration"]["properties"]
        .as_mapping()
        .unwrap()
    {
        assert!(documented.contains(&name.as_str().unwrap()), "{name:?}");
    }
}

/// A declared client (`POST /admin/apply`) accepts the registration members
/// but `client_secret`, and `secret` (a reference).
#[test]
fn declared_client_property_names_are_the_registration_members_with_a_secret_reference() {
    let doc = openapi();
    let documented = property_names(&doc, "DeclaredClient");
    let mut expected: Vec<&str> = portcullis::clients::members::accepted()
        .into_iter()
        .filter(|n| *n != "client_secret")
        .chain(["secret"])
        .collect();
    expected.sort_unstable();
    assert_eq!(documented, expected);
}
