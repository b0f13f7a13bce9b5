//! The admin REST API behind an admin bearer token: RFC 7591/7592 shaped
//! client management, federations (trusted external issuers), and
//! signing-key status and rotation.

pub mod apply;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod federations;
pub mod keys;
pub mod tokens;

/// One page of a listing fetched with one item more than `limit`: the page,
/// and the cursor of the next page when that extra item came back.
pub(crate) fn page<T, C>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = limit as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}
