//! The DDL in `schema/` (compiled in), applied in file order at start.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so applying twice is harmless and
//! several collectors may start at once. Files under `schema/modern/` use features
//! ClickHouse 18.16 lacks (TTL, skip indexes, codecs) and are applied only when
//! `SELECT version()` is new enough; there, retention is done by
//! [`drop_expired_partitions`] instead.

use clickhouse::sql::Identifier;
use clickhouse::Client;

/// One DDL file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    /// File name, for logs and errors.
    pub name: &'static str,
    /// Its text.
    pub sql: &'static str,
}

macro_rules! schema_file {
    ($path:literal) => {
        SchemaFile { name: $path, sql: include_str!(concat!("../../../schema/", $path)) }
    };
}

/// Portable DDL, applied to every server.
pub const BASE: &[SchemaFile] = &[schema_file!("001_sip_messages.sql"), schema_file!("002_sip_calls.sql")];

/// Modern-only DDL. `{{retention_days}}` is substituted; the TTL file is skipped when
/// retention is off.
pub const MODERN: &[SchemaFile] = &[schema_file!("modern/101_ttl.sql"), schema_file!("modern/102_indexes.sql")];

/// First ClickHouse major version given the modern files (ngrambf indexes and
/// `ADD INDEX IF NOT EXISTS` are stable from there on).
pub const MODERN_MAJOR: u32 = 21;

/// The tables retention applies to.
pub const TABLES: [&str; 2] = ["sip_messages", "sip_calls"];

/// What [`apply`] found and did.
#[derive(Debug, Clone)]
pub struct SchemaReport {
    /// `SELECT version()`.
    pub server_version: String,
    /// Whether the modern files were applied.
    pub modern: bool,
    /// Statements executed.
    pub statements: usize,
}

/// Splits a file into statements: `--` comment lines dropped, split on `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let body: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    body.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Whether a `version()` string (e.g. `18.16.1`, `24.8.4.13`) is at least [`MODERN_MAJOR`].
pub fn is_modern(version: &str) -> bool {
    version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= MODERN_MAJOR)
}

/// Creates the database when missing, then applies [`BASE`] and, on a modern server,
/// [`MODERN`]. `client` must not have a database set; the tables go to `database`.
pub async fn apply(client: &Client, database: &str, retention_days: u32) -> Result<SchemaReport, String> {
    client
        .query("CREATE DATABASE IF NOT EXISTS ?")
        .bind(Identifier(database))
        .execute()
        .await
        .map_err(|e| format!("creating database {database}: {e}"))?;
    let server_version: String =
        client.query("SELECT version()").fetch_one().await.map_err(|e| format!("SELECT version(): {e}"))?;
    let modern = is_modern(&server_version);
    let db = client.clone().with_database(database);
    let mut report = SchemaReport { server_version, modern, statements: 0 };
    report.statements += run_files(&db, BASE, None).await?;
    if modern {
        report.statements += run_files(&db, MODERN, Some(retention_days)).await?;
    }
    Ok(report)
}

/// The statements of `files` as [`apply`] runs them, each with its file name:
/// `{{retention_days}}` substituted, and files that need it skipped when retention is
/// off (`None` or 0). Public so tests can run the same text on other servers (chDB).
pub fn render(files: &[SchemaFile], retention_days: Option<u32>) -> Vec<(&'static str, String)> {
    let days = retention_days.unwrap_or(0);
    files
        .iter()
        .filter(|file| days > 0 || !file.sql.contains("{{retention_days}}"))
        .flat_map(|file| {
            let sql = file.sql.replace("{{retention_days}}", &days.to_string());
            statements(&sql).into_iter().map(move |stmt| (file.name, stmt))
        })
        .collect()
}

async fn run_files(db: &Client, files: &[SchemaFile], retention_days: Option<u32>) -> Result<usize, String> {
    let stmts = render(files, retention_days);
    for (name, stmt) in &stmts {
        // query_raw: DDL has no bind placeholders, and `?` must pass through.
        db.query_raw(stmt).execute().await.map_err(|e| format!("{name}: {e}\nstatement: {stmt}"))?;
    }
    Ok(stmts.len())
}

/// Retention for servers without TTL: drops whole daily partitions of [`TABLES`] whose
/// newest day is more than `retention_days` before `today` (`YYYY-MM-DD`). Returns the
/// number of partitions dropped. Harmless on modern servers (TTL got there first).
pub async fn drop_expired_partitions(
    client: &Client,
    database: &str,
    retention_days: u32,
    today: &str,
) -> Result<usize, String> {
    if retention_days == 0 {
        return Ok(0);
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Part {
        table: String,
        partition_id: String,
    }
    let parts: Vec<Part> = client
        .query(
            "SELECT DISTINCT table, partition_id FROM system.parts \
             WHERE active AND database = ? AND table IN ? AND max_date < toDate(?) - ?",
        )
        .bind(database)
        .bind(TABLES)
        .bind(today)
        .bind(retention_days)
        .fetch_all()
        .await
        .map_err(|e| format!("listing partitions: {e}"))?;
    for part in &parts {
        client
            .query("ALTER TABLE ?.? DROP PARTITION ID ?")
            .bind(Identifier(database))
            .bind(Identifier(&part.table))
            .bind(&part.partition_id)
            .execute()
            .await
            .map_err(|e| format!("dropping partition {} of {}: {e}", part.partition_id, part.table))?;
    }
    Ok(parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_drops_comments() {
        let s = statements("-- a; comment\nCREATE TABLE a (x UInt8);\n\n-- b\nCREATE VIEW b AS SELECT 1;\n");
        assert_eq!(s, vec!["CREATE TABLE a (x UInt8)", "CREATE VIEW b AS SELECT 1"]);
    }

    #[test]
    fn every_schema_file_is_compiled_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema");
        for (sub, list) in [("", BASE), ("modern/", MODERN)] {
            let mut on_disk: Vec<String> = std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".sql"))
                .map(|n| format!("{sub}{n}"))
                .collect();
            on_disk.sort();
            let listed: Vec<String> = list.iter().map(|f| f.name.to_owned()).collect();
            assert_eq!(on_disk, listed, "schema/{sub} and the compiled-in list differ");
        }
    }

    #[test]
    fn version_gate() {
        assert!(!is_modern("18.16.1"));
        assert!(is_modern("24.8.4.13"));
        assert!(!is_modern("garbage"));
    }
}
