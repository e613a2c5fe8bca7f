//! The rule for names users give to tables, schemas, indexes, profiles and model
//! services, and the names Lakehouse keeps for itself.
//!
//! Owns: nothing. May call: nothing (a leaf, used by `config` and `catalog`).

/// The name of the built-in embedding model, which no configured model service may take.
pub(crate) const BUILTIN_EMBEDDER: &str = "builtin";

/// Accepts lower-case ASCII identifiers of at most 128 characters, which is what
/// DataFusion resolves unquoted identifiers to; otherwise says why not.
pub(crate) fn check(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("empty"),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return Err("must start with a lower-case letter or underscore");
        }
        _ => {}
    }
    if name.len() > 128 {
        return Err("longer than 128 characters");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err("only lower-case letters, digits and underscores are allowed");
    }
    Ok(())
}
