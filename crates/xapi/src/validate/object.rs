//! The JSON object type the validators walk and the one-pass field picker
//! they share (the statement and the agent rules alike).

use serde_json::{Map, Value};

pub(crate) type Object = Map<String, Value>;

/// Picks the named members out of an object in one pass over its entries
/// (cheaper than one hashed lookup per name for the small objects of a
/// statement, most of whose optional properties are absent).
pub(crate) fn fields<'a, const N: usize>(
    o: &'a Object,
    names: [&str; N],
) -> [Option<&'a Value>; N] {
    let mut out = [None; N];
    for (key, value) in o {
        if let Some(i) = names.iter().position(|name| *name == key) {
            out[i] = Some(value);
        }
    }
    out
}
