//! SQL identifiers: quoting the table's name, and the store's side table.

/// The side table of owner epochs, one per schema (see `ownership.rs`).
pub(super) const OWNERS_TABLE: &str = "writebehind_owners";

/// `parts` (identifiers) joined by dots, each double-quoted.
pub(super) fn quote(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// `table` (`name` or `schema.name`, as `PgConfig::validate` accepts)
/// quoted for SQL.
pub(super) fn quote_table(table: &str) -> String {
    quote(&table.split('.').collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_table_quotes_each_part_and_escapes_quotes() {
        assert_eq!(quote_table("order"), "\"order\"");
        assert_eq!(quote_table("s.t"), "\"s\".\"t\"");
        assert_eq!(quote(&["a\"b"]), "\"a\"\"b\"");
    }
}
