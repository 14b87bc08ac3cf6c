//! The table at open: created if missing, its shape checked if present, and
//! resolved to one schema-qualified table for the store's whole life.

use postgres::{Client, NoTls};

use super::error::db_error;
use super::sql::{quote, quote_table, OWNERS_TABLE};
use crate::error::Error;

/// The expected columns: name, type as `format_type` prints it, NOT NULL.
const COLUMNS: [(&str, &str, bool); 3] = [
    ("key", "bytea", true),
    ("version", "bigint", true),
    ("value", "bytea", false),
];

/// The owners table's columns.
const OWNER_COLUMNS: [(&str, &str, bool); 2] = [("tbl", "text", true), ("epoch", "bigint", true)];

/// The store's table, resolved once at open, so a reconnect under another
/// `search_path` cannot land elsewhere.
#[derive(Debug)]
pub(super) struct Table {
    /// The table's OID at open: a reconnect that finds another table under
    /// the name fences the store.
    pub(super) oid: i64,
    schema: String,
    name: String,
}

impl Table {
    /// `schema.name`, unquoted: the owner key and the lock name.
    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The table, schema-qualified, quoted for SQL.
    pub(super) fn quoted(&self) -> String {
        quote(&[&self.schema, &self.name])
    }

    /// The side table of owner epochs in the table's schema, quoted.
    pub(super) fn owners(&self) -> String {
        quote(&[&self.schema, OWNERS_TABLE])
    }
}

/// Creates the table `name` (as `PgConfig::table` spells it) if missing,
/// checks its shape, creates the owners table beside it if missing and
/// checks that too, on a connection of its own that it closes.
pub(super) fn ensure_table(pg: &postgres::Config, name: &str) -> Result<Table, Error> {
    let db = |what: &str, e: postgres::Error| db_error(name, what, &e);
    let mut client = pg.connect(NoTls).map_err(|e| db("connecting", e))?;
    let quoted = quote_table(name);
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {quoted} (key bytea PRIMARY KEY, version bigint NOT NULL, value bytea)"
    );
    create_if_missing(&mut client, name, &quoted, "the table", &create)?;
    let table = resolve(&mut client, &quoted)
        .map_err(|e| db("looking the table up", e))?
        .ok_or_else(|| Error::Database(format!("{name}: created, but not found")))?;
    let owners = table.owners();
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {owners} (tbl text PRIMARY KEY, epoch bigint NOT NULL)"
    );
    create_if_missing(&mut client, name, &owners, "the owners table", &create)?;
    check_columns(&mut client, &quoted, name, &COLUMNS)?;
    let owners_name = format!("{}.{OWNERS_TABLE}", table.schema);
    check_columns(&mut client, &owners, &owners_name, &OWNER_COLUMNS)?;
    check_unique_key(&mut client, &quoted, name)?;
    client.close().map_err(|e| db("disconnecting", e))?;
    Ok(table)
}

/// The table `quoted` names now, if there is one.
fn resolve(client: &mut Client, quoted: &str) -> Result<Option<Table>, postgres::Error> {
    let row = client.query_opt(
        "SELECT c.oid::bigint, n.nspname::text, c.relname::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1)",
        &[&quoted],
    )?;
    Ok(row.map(|r| Table {
        oid: r.get(0),
        schema: r.get(1),
        name: r.get(2),
    }))
}

/// Runs `create` if `quoted` (`what`, in errors about table `name`) does not
/// exist: only then, so a role without CREATE on the schema can open an
/// existing table.
fn create_if_missing(
    client: &mut Client,
    name: &str,
    quoted: &str,
    what: &str,
    create: &str,
) -> Result<(), Error> {
    let found =
        resolve(client, quoted).map_err(|e| db_error(name, &format!("looking {what} up"), &e))?;
    if found.is_none() {
        client
            .batch_execute(create)
            .map_err(|e| db_error(name, &format!("creating {what}"), &e))?;
    }
    Ok(())
}

/// Checks that `table` (quoted) has exactly `expected` columns, in order;
/// `name` is how errors call it.
fn check_columns(
    client: &mut Client,
    table: &str,
    name: &str,
    expected: &[(&str, &str, bool)],
) -> Result<(), Error> {
    let found: Vec<(String, String, bool)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&table],
        )
        .map_err(|e| db_error(name, "reading its columns", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let matches = found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(f, (n, ty, not_null))| f.0 == *n && f.1 == *ty && f.2 == *not_null);
    if matches {
        return Ok(());
    }
    let show = |cols: &mut dyn Iterator<Item = (&str, &str, bool)>| {
        cols.map(|(n, t, nn)| format!("{n} {t}{}", if nn { " NOT NULL" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Database(format!(
        "table {name} has columns ({}), expected exactly ({}); use another table or migrate this one",
        show(&mut found.iter().map(|(n, t, nn)| (n.as_str(), t.as_str(), *nn))),
        show(&mut expected.iter().copied())
    )))
}

/// Checks that `table` (quoted; `name` in errors) has the index the upsert's
/// `ON CONFLICT (key)` needs: unique, on `key` alone, valid and not
/// deferrable.
fn check_unique_key(client: &mut Client, table: &str, name: &str) -> Result<(), Error> {
    let unique: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 \
               AND i.indimmediate AND i.indisvalid AND i.indisready \
               AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'key'",
            &[&table],
        )
        .map_err(|e| db_error(name, "reading the table's indexes", &e))?
        .get(0);
    if unique == 0 {
        return Err(Error::Database(format!(
            "table {name} has no valid, non-deferrable unique index on (key) alone; the upsert needs one (PRIMARY KEY (key))"
        )));
    }
    Ok(())
}
