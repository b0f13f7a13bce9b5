//! The `clients` table, generated from the client field table
//! (`clients::fields`): how each field's type is stored ([`Column`]), the
//! column list, the INSERT and UPDATE statements and their binds, and the
//! decoding of a row. Both engines run the same statements.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgArguments, PgRow},
    query::Query,
    sqlite::{SqliteArguments, SqliteRow},
    Decode, Encode, Postgres, Row, Sqlite, Type,
};

use super::{rows::DbTime, StoreError};
use crate::{
    clients::{fields::client_fields, AuthMethod, Client, ClientId, GrantType, KeyMaterial},
    oauth::scope::ScopeSet,
};

/// A Rust type that both engines bind and decode: the type of a column.
pub trait EngineValue:
    Send
    + 'static
    + Type<Postgres>
    + Type<Sqlite>
    + for<'q> Encode<'q, Postgres>
    + for<'q> Encode<'q, Sqlite>
    + for<'r> Decode<'r, Postgres>
    + for<'r> Decode<'r, Sqlite>
{
}

impl<T> EngineValue for T where
    T: Send
        + 'static
        + Type<Postgres>
        + Type<Sqlite>
        + for<'q> Encode<'q, Postgres>
        + for<'q> Encode<'q, Sqlite>
        + for<'r> Decode<'r, Postgres>
        + for<'r> Decode<'r, Sqlite>
{
}

/// How a client field of this type is kept in its column.
pub trait Column: Sized {
    /// The column's type.
    type Value: EngineValue;
    /// The column value of the field.
    fn to_column(&self) -> Self::Value;
    /// The field from its column value; `Err` says what is corrupt.
    fn from_column(value: Self::Value) -> Result<Self, &'static str>;
}

impl Column for ClientId {
    type Value = String;
    fn to_column(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        Self::parse(&value).map_err(|_| "bad id")
    }
}

impl Column for String {
    type Value = String;
    fn to_column(&self) -> String {
        self.clone()
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        Ok(value)
    }
}

impl Column for bool {
    type Value = bool;
    fn to_column(&self) -> bool {
        *self
    }
    fn from_column(value: bool) -> Result<Self, &'static str> {
        Ok(value)
    }
}

/// A positive count (lifetime in seconds, rate, quota); a stored value out of
/// `1..=u32::MAX` is clamped into it.
impl Column for u32 {
    type Value = i64;
    fn to_column(&self) -> i64 {
        i64::from(*self)
    }
    fn from_column(value: i64) -> Result<Self, &'static str> {
        Ok(value.clamp(1, i64::from(u32::MAX)) as u32)
    }
}

impl Column for DateTime<Utc> {
    type Value = DbTime;
    fn to_column(&self) -> DbTime {
        DbTime(*self)
    }
    fn from_column(value: DbTime) -> Result<Self, &'static str> {
        Ok(value.0)
    }
}

/// An absent field is `NULL`.
impl<T: Column> Column for Option<T> {
    type Value = Option<T::Value>;
    fn to_column(&self) -> Option<T::Value> {
        self.as_ref().map(Column::to_column)
    }
    fn from_column(value: Option<T::Value>) -> Result<Self, &'static str> {
        value.map(T::from_column).transpose()
    }
}

/// Wire values, space-separated.
impl Column for Vec<GrantType> {
    type Value = String;
    fn to_column(&self) -> String {
        let names: Vec<&str> = self.iter().map(|g| g.as_str()).collect();
        names.join(" ")
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        value
            .split(' ')
            .map(|g| GrantType::parse(g).ok_or("unknown grant type"))
            .collect()
    }
}

impl Column for AuthMethod {
    type Value = String;
    fn to_column(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        Self::parse(&value).ok_or("auth method")
    }
}

impl Column for ScopeSet {
    type Value = String;
    fn to_column(&self) -> String {
        self.to_string()
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        Self::parse(&value).map_err(|_| "scope")
    }
}

/// A JSON array (of audiences, the one list of strings a client has).
impl Column for Vec<String> {
    type Value = String;
    fn to_column(&self) -> String {
        serde_json::Value::from(self.clone()).to_string()
    }
    fn from_column(value: String) -> Result<Self, &'static str> {
        serde_json::from_str(&value).map_err(|_| "audiences")
    }
}

/// One JSON document; `NULL` when nothing is registered.
impl Column for KeyMaterial {
    type Value = Option<String>;
    fn to_column(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }
    fn from_column(value: Option<String>) -> Result<Self, &'static str> {
        match value {
            Some(json) => serde_json::from_str(&json).map_err(|_| "key material"),
            None => Ok(Self::default()),
        }
    }
}

/// A query, of either engine, that column values bind to.
pub trait Bind: Sized {
    /// Binds the next parameter.
    fn bind_value<T: EngineValue>(self, value: T) -> Self;
}

impl Bind for Query<'_, Postgres, PgArguments> {
    fn bind_value<T: EngineValue>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q> Bind for Query<'q, Sqlite, SqliteArguments<'q>> {
    fn bind_value<T: EngineValue>(self, value: T) -> Self {
        self.bind(value)
    }
}

/// A row, of either engine, that column values decode from.
pub trait ReadColumn {
    /// The value of the column `name`.
    fn read<T: EngineValue>(&self, name: &str) -> Result<T, sqlx::Error>;
}

impl ReadColumn for PgRow {
    fn read<T: EngineValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

impl ReadColumn for SqliteRow {
    fn read<T: EngineValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

/// The statements that write a client row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statement {
    /// [`INSERT_CLIENT`]: a new client.
    Insert,
    /// [`UPDATE_CLIENT`]: a changed client.
    Update,
}

/// A column other than the key, and the statements that write it.
struct ClientColumn {
    name: &'static str,
    written_by: &'static [Statement],
}

/// A metadata field's column: named like its member unless the table says.
macro_rules! column_name {
    ($member:ident) => {
        stringify!($member)
    };
    ($member:ident, column $column:ident) => {
        stringify!($column)
    };
}

/// Generates the column list, the binds and the row decoding from the
/// [`client_fields!`] table.
macro_rules! client_table {
    (
        identity {
            $(#[$id_doc:meta])* $id:ident: $id_ty:ty => $id_member:ident, column $id_column:ident;
        }
        metadata {
            $(
                $(#[$doc:meta])* $field:ident: $ty:ty => $member:ident $(, column $column:ident)?;
            )*
        }
        key_material {
            $(#[$keys_doc:meta])* $keys:ident: $keys_ty:ty, column $keys_column:ident;
        }
        state {
            $(
                $(#[$state_doc:meta])* $state:ident: $state_ty:ty, written by [$($by:ident),*];
            )*
        }
    ) => {
        /// The key column: INSERT writes it, UPDATE finds the row by it.
        const KEY: &str = stringify!($id_column);

        /// The other columns, in table order.
        const COLUMNS: &[ClientColumn] = &[
            $(ClientColumn {
                name: column_name!($member $(, column $column)?),
                written_by: &[Statement::Insert, Statement::Update],
            },)*
            ClientColumn {
                name: stringify!($keys_column),
                written_by: &[Statement::Insert, Statement::Update],
            },
            $(ClientColumn {
                name: stringify!($state),
                written_by: &[$(Statement::$by),*],
            },)*
        ];

        /// Binds `client` to [`INSERT_CLIENT`] or [`UPDATE_CLIENT`]: the key,
        /// then the columns `statement` writes, in table order.
        pub fn bind_client<Q: Bind>(query: Q, client: &Client, statement: Statement) -> Q {
            let mut query = query.bind_value(client.$id.to_column());
            // One call per field, in the order of COLUMNS.
            let mut columns = COLUMNS.iter();
            let mut written = || columns.next().is_some_and(|c| c.written_by.contains(&statement));
            $(if written() {
                query = query.bind_value(client.$field.to_column());
            })*
            if written() {
                query = query.bind_value(client.$keys.to_column());
            }
            $(if written() {
                query = query.bind_value(client.$state.to_column());
            })*
            query
        }

        /// Decodes a `clients` row.
        pub fn client_from_row(row: &impl ReadColumn) -> Result<Client, StoreError> {
            let id: String = row.read(KEY)?;
            let corrupt = |what: &str| StoreError::Corrupt(format!("client {id}: {what}"));
            Ok(Client {
                $id: field(row, KEY, &corrupt)?,
                $($field: field(row, column_name!($member $(, column $column)?), &corrupt)?,)*
                $keys: field(row, stringify!($keys_column), &corrupt)?,
                $($state: field(row, stringify!($state), &corrupt)?,)*
            })
        }
    };
}

client_fields!(client_table);

/// Reads the column `name` into a field.
fn field<T: Column>(
    row: &impl ReadColumn,
    name: &str,
    corrupt: &impl Fn(&str) -> StoreError,
) -> Result<T, StoreError> {
    T::from_column(row.read(name)?).map_err(corrupt)
}

/// The columns `statement` writes, in table order.
fn written_by(statement: Statement) -> impl Iterator<Item = &'static str> {
    COLUMNS
        .iter()
        .filter(move |c| c.written_by.contains(&statement))
        .map(|c| c.name)
}

/// `INSERT INTO clients (id, client_name, …) VALUES ($1, $2, …)`: the key and
/// every column INSERT writes.
pub static INSERT_CLIENT: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<&str> = std::iter::once(KEY)
        .chain(written_by(Statement::Insert))
        .collect();
    let values: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO clients ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
});

/// `UPDATE clients SET client_name = $2, … WHERE id = $1`: every column
/// UPDATE writes.
pub static UPDATE_CLIENT: LazyLock<String> = LazyLock::new(|| {
    let set: Vec<String> = written_by(Statement::Update)
        .zip(2..)
        .map(|(column, n)| format!("{column} = ${n}"))
        .collect();
    format!("UPDATE clients SET {} WHERE {KEY} = $1", set.join(", "))
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The `$n` parameters of `sql`, in order.
    fn parameters(sql: &str) -> Vec<usize> {
        sql.split('$')
            .skip(1)
            .map(|s| s.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
            .map(|n| n.parse().unwrap_or(0))
            .collect()
    }

    #[test]
    fn insert_names_a_parameter_for_each_column_in_order() {
        let (columns, values) = INSERT_CLIENT
            .strip_prefix("INSERT INTO clients (")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.split_once(") VALUES ("))
            .unwrap();
        let columns: Vec<&str> = columns.split(", ").collect();
        assert_eq!(columns[0], "id");
        assert!(columns.contains(&"client_name") && columns.contains(&"key_material"));
        assert!(!columns.contains(&"tokens_revoked_before") && !columns.contains(&"locked_until"));
        assert_eq!(parameters(values), (1..=columns.len()).collect::<Vec<_>>());
    }

    #[test]
    fn update_finds_the_row_by_id_and_sets_what_the_metadata_owns() {
        let set = UPDATE_CLIENT
            .strip_prefix("UPDATE clients SET ")
            .and_then(|s| s.strip_suffix(" WHERE id = $1"))
            .unwrap();
        let (columns, values): (Vec<&str>, Vec<&str>) =
            set.split(", ").filter_map(|a| a.split_once(" = ")).unzip();
        assert_eq!(columns[0], "client_name");
        assert!(columns.contains(&"locked_until") && columns.contains(&"updated_at"));
        for kept in ["id", "created_at", "tokens_revoked_before"] {
            assert!(!columns.contains(&kept), "{kept}");
        }
        assert_eq!(
            parameters(&values.join(" ")),
            (2..=columns.len() + 1).collect::<Vec<_>>()
        );
    }
}
