//! The plan of a declarative apply: what changes, client by client, with
//! the fields that differ (from → to). Pure: the registry gathers the
//! current state, [`plan_client`] and [`Plan`] decide and describe.
//!
//! | current client            | declared        | action      |
//! |---------------------------|-----------------|-------------|
//! | absent                    | yes             | `create`    |
//! | owner = document's        | yes, differs    | `update`    |
//! | owner = document's        | yes, same       | `unchanged` |
//! | no owner (made by hand)   | yes             | `adopt`     |
//! | another owner             | yes             | refused     |
//! | owner = document's        | no, `--prune`   | `delete`    |
//! | no owner / another owner  | no              | left alone  |
//!
//! A secret is never shown: a change of it is the field `secret` going to
//! `"changed"`.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use serde_json::Value;

use crate::clients::{Client, RegistrationRequest};

/// What apply does to one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Register it.
    Create,
    /// Change the fields that differ.
    Update,
    /// Take over a client made by hand: label it, and change what differs.
    Adopt,
    /// Delete it (`--prune`).
    Delete,
    /// Nothing to do.
    Unchanged,
}

/// One field's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The current value (`null`: not set).
    pub from: Value,
    /// The declared value (`null`: not set).
    pub to: Value,
}

/// One client's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What is done.
    pub action: Action,
    /// The client.
    pub client_id: String,
    /// The fields that differ, by metadata member name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldChange>,
}

/// How many clients each action touches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Created.
    pub create: usize,
    /// Updated.
    pub update: usize,
    /// Adopted.
    pub adopt: usize,
    /// Deleted.
    pub delete: usize,
    /// Left as they are.
    pub unchanged: usize,
}

/// The whole plan, as `--output json` and `POST /admin/apply` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// True when nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// The document's owner label.
    pub owner: String,
    /// `sha256:` and the hex digest of the document's bytes.
    pub digest: String,
    /// Declared clients in document order, then deletions.
    pub changes: Vec<Change>,
    /// Counts by action.
    pub summary: Summary,
}

impl Plan {
    /// A plan of `changes`.
    #[must_use]
    pub fn new(owner: String, digest: String, changes: Vec<Change>, dry_run: bool) -> Self {
        let mut summary = Summary::default();
        for change in &changes {
            *match change.action {
                Action::Create => &mut summary.create,
                Action::Update => &mut summary.update,
                Action::Adopt => &mut summary.adopt,
                Action::Delete => &mut summary.delete,
                Action::Unchanged => &mut summary.unchanged,
            } += 1;
        }
        Self {
            dry_run,
            owner,
            digest,
            changes,
            summary,
        }
    }

    /// Whether applying the plan writes anything.
    #[must_use]
    pub fn changes_anything(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged)
    }
}

/// The secret field's change, when the secret changes.
#[must_use]
pub fn secret_change(had_secret: bool) -> FieldChange {
    FieldChange {
        from: if had_secret {
            "set".into()
        } else {
            Value::Null
        },
        to: "changed".into(),
    }
}

/// What to do with declared client `declared`, given the current one and
/// its owner label. `Err` for a client another owner manages.
pub fn plan_client(
    declared: &Client,
    current: Option<(&Client, Option<&str>)>,
    owner: &str,
    secret: Option<FieldChange>,
) -> Result<Change, String> {
    let id = declared.id.to_string();
    let Some((current, current_owner)) = current else {
        return Ok(Change {
            action: Action::Create,
            client_id: id,
            fields: BTreeMap::new(),
        });
    };
    let mut fields = diff(current, declared);
    if let Some(secret) = secret {
        fields.insert("secret".into(), secret);
    }
    let action = match current_owner {
        Some(o) if o != owner => {
            return Err(format!(
                "client {id:?} exists and is managed by owner {o:?}, not {owner:?}; \
                 remove it from one of the documents (or delete it) first"
            ))
        }
        None => Action::Adopt,
        Some(_) if fields.is_empty() => Action::Unchanged,
        Some(_) => Action::Update,
    };
    Ok(Change {
        action,
        client_id: id,
        fields,
    })
}

/// The metadata members that differ between `before` and `after`.
#[must_use]
pub fn diff(before: &Client, after: &Client) -> BTreeMap<String, FieldChange> {
    let members = |c: &Client| match serde_json::to_value(RegistrationRequest::from(c)) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (from, to) = (members(before), members(after));
    let mut names: Vec<&String> = from.keys().chain(to.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| *n != "client_id")
        .filter_map(|name| {
            let (f, t) = (
                from.get(name).cloned().unwrap_or(Value::Null),
                to.get(name).cloned().unwrap_or(Value::Null),
            );
            (f != t).then(|| (name.clone(), FieldChange { from: f, to: t }))
        })
        .collect()
}

impl fmt::Display for Plan {
    /// The text plan: one line per client (`+ create`, `~ update` with its
    /// fields, `- delete`, `= unchanged`), then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for change in &self.changes {
            let (sign, verb) = match change.action {
                Action::Create => ('+', "create"),
                Action::Update => ('~', "update"),
                Action::Adopt => ('~', "adopt"),
                Action::Delete => ('-', "delete"),
                Action::Unchanged => ('=', "unchanged"),
            };
            write!(f, "{sign} {verb} {}", change.client_id)?;
            let fields: Vec<String> = change
                .fields
                .iter()
                .map(|(name, c)| {
                    if name == "secret" {
                        "secret changed".to_owned()
                    } else {
                        format!("{name} {} → {}", show(&c.from), show(&c.to))
                    }
                })
                .collect();
            if !fields.is_empty() {
                write!(f, ": {}", fields.join(", "))?;
            }
            writeln!(f)?;
        }
        let s = &self.summary;
        write!(
            f,
            "{}: {} to create, {} to update, {} to adopt, {} to delete, {} unchanged (owner {}, {})",
            if self.dry_run { "Plan (dry run, nothing changed)" } else { "Applied" },
            s.create,
            s.update,
            s.adopt,
            s.delete,
            s.unchanged,
            self.owner,
            self.digest
        )
    }
}

/// A value in the text plan: strings quoted, `null` as `(none)`.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{clients::ClientId, oauth::scope::ScopeSet};

    fn client(id: &str, scope: &str) -> Client {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut c = Client::new(ClientId::parse(id).unwrap(), now);
        c.scope = ScopeSet::parse(scope).unwrap();
        c
    }

    #[test]
    fn a_missing_client_is_created() {
        let change = plan_client(&client("a", "x"), None, "team", None).unwrap();
        assert_eq!(change.action, Action::Create);
    }

    #[test]
    fn only_the_fields_that_differ_are_in_an_update() {
        let before = client("a", "x");
        let mut after = client("a", "x y");
        after.name = Some("A".into());
        let change = plan_client(&after, Some((&before, Some("team"))), "team", None).unwrap();
        assert_eq!(change.action, Action::Update);
        assert_eq!(change.fields.len(), 2, "{:?}", change.fields);
        assert_eq!(change.fields["scope"].from, "x");
        assert_eq!(change.fields["scope"].to, "x y");
        assert_eq!(change.fields["client_name"].from, Value::Null);
    }

    #[test]
    fn the_same_client_is_unchanged_unless_its_secret_changed() {
        let c = client("a", "x");
        let same = plan_client(&c, Some((&c, Some("team"))), "team", None).unwrap();
        assert_eq!(same.action, Action::Unchanged);
        let secret = plan_client(
            &c,
            Some((&c, Some("team"))),
            "team",
            Some(secret_change(true)),
        );
        let secret = secret.unwrap();
        assert_eq!(secret.action, Action::Update);
        assert_eq!(secret.fields["secret"].to, "changed");
    }

    #[test]
    fn a_client_without_owner_is_adopted_and_another_owners_is_refused() {
        let c = client("a", "x");
        let adopted = plan_client(&c, Some((&c, None)), "team", None).unwrap();
        assert_eq!(adopted.action, Action::Adopt);
        let err = plan_client(&c, Some((&c, Some("other"))), "team", None).unwrap_err();
        assert!(err.contains("\"other\""), "{err}");
    }

    #[test]
    fn the_text_plan_shows_each_change_and_the_summary() {
        let before = client("reports", "a");
        let after = client("reports", "a b");
        let changes = vec![
            plan_client(&client("billing", ""), None, "t", None).unwrap(),
            plan_client(
                &after,
                Some((&before, Some("t"))),
                "t",
                Some(secret_change(true)),
            )
            .unwrap(),
            Change {
                action: Action::Delete,
                client_id: "old".into(),
                fields: BTreeMap::new(),
            },
        ];
        let plan = Plan::new("t".into(), "sha256:00".into(), changes, true);
        let text = plan.to_string();
        assert!(text.contains("+ create billing\n"), "{text}");
        assert!(
            text.contains("~ update reports: scope \"a\" → \"a b\", secret changed\n"),
            "{text}"
        );
        assert!(text.contains("- delete old\n"), "{text}");
        assert!(text.ends_with("1 to create, 1 to update, 0 to adopt, 1 to delete, 0 unchanged (owner t, sha256:00)"), "{text}");
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["changes"][1]["fields"]["scope"]["to"], "a b");
        assert_eq!(json["summary"]["delete"], 1);
        assert_eq!(
            json["changes"][1]["fields"]["secret"],
            serde_json::json!({"from": "set", "to": "changed"})
        );
    }
}
