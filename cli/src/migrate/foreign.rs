//! Other tools' history tables: found, so that plat never applies again what another tool
//! applied, and read, so that `plat migrate import` can take the history over.
//!
//! Each tool's table is read with that tool's meaning: golang-migrate keeps one row (the
//! version everything up to is applied, and whether it was left dirty); goose logs every up and
//! down, the last entry of a version saying where it stands; Flyway logs every run, with undo
//! rows and failed rows; sqlx keeps one row per applied migration.

use tokio_postgres::Client;

/// A migration tool whose history plat can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// golang-migrate's `schema_migrations`.
    GolangMigrate,
    /// goose's `goose_db_version`.
    Goose,
    /// Flyway's `flyway_schema_history`.
    Flyway,
    /// sqlx's `_sqlx_migrations`.
    Sqlx,
}

impl Tool {
    /// Every tool, in the order they are looked for.
    pub const ALL: [Tool; 4] = [Tool::GolangMigrate, Tool::Goose, Tool::Flyway, Tool::Sqlx];

    /// The tool's name, as its users write it.
    pub fn name(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Flyway => "Flyway",
            Tool::Sqlx => "sqlx",
        }
    }

    /// A column only this tool's table has: Rails, for one, also keeps a `schema_migrations`.
    fn marker_column(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "dirty",
            Tool::Goose => "is_applied",
            Tool::Flyway => "installed_rank",
            Tool::Sqlx => "checksum",
        }
    }

    /// The tool named `name` (`golang-migrate`, `goose`, `flyway`, `sqlx`).
    pub fn parse(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|tool| tool.name().eq_ignore_ascii_case(name))
    }

    /// Its history table, found on the search path as the tool itself finds it.
    pub fn table(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
            Tool::Sqlx => "_sqlx_migrations",
        }
    }
}

/// The tools whose history table exists in the database and holds rows.
pub async fn find(client: &Client) -> Result<Vec<Tool>, tokio_postgres::Error> {
    let mut found = Vec::new();
    for tool in Tool::ALL {
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2)",
                &[&tool.table(), &tool.marker_column()],
            )
            .await?
            .get(0);
        if !exists {
            continue;
        }
        let rows: bool =
            client.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", tool.table()), &[]).await?.get(0);
        if rows {
            found.push(tool);
        }
    }
    Ok(found)
}

/// The versions `tool`'s history says are applied, in order; `Err` (the outer `Ok`) with the
/// reason when the history is in a state plat must not take over (dirty, failed, dotted).
/// `files` are the versions of the files, for golang-migrate's "everything up to N".
pub async fn applied(
    client: &Client,
    tool: Tool,
    files: &[i64],
) -> Result<Result<Vec<i64>, String>, tokio_postgres::Error> {
    let mut versions: Vec<i64> = Vec::new();
    match tool {
        Tool::GolangMigrate => {
            let Some(row) = client.query_opt("SELECT version, dirty FROM schema_migrations LIMIT 1", &[]).await? else {
                return Ok(Ok(versions));
            };
            let (version, dirty): (i64, bool) = (row.get(0), row.get(1));
            if dirty {
                return Ok(Err(format!(
                    "golang-migrate left version {version} dirty (it failed halfway): check what it left, then \
                     `migrate force` the version golang-migrate should record, and import again"
                )));
            }
            versions.extend(files.iter().copied().filter(|file| *file <= version));
        }
        Tool::Goose => {
            let rows = client.query("SELECT version_id, is_applied FROM goose_db_version ORDER BY id", &[]).await?;
            let mut state = std::collections::BTreeMap::new();
            for row in rows {
                state.insert(row.get::<_, i64>(0), row.get::<_, bool>(1));
            }
            // Version 0 is the row goose writes when it creates its table.
            versions.extend(state.into_iter().filter(|(version, applied)| *version != 0 && *applied).map(|(v, _)| v));
        }
        Tool::Flyway => {
            let rows = client
                .query(
                    "SELECT version, success, type FROM flyway_schema_history WHERE version IS NOT NULL \
                     ORDER BY installed_rank",
                    &[],
                )
                .await?;
            let mut state = std::collections::BTreeMap::new();
            for row in rows {
                let (text, success, kind): (String, bool, String) = (row.get(0), row.get(1), row.get(2));
                let Ok(version) = text.parse::<i64>() else {
                    return Ok(Err(format!(
                        "Flyway's version `{text}` is not an integer, as plat's versions are: renumber the files, \
                         then record them with `plat migrate mark`"
                    )));
                };
                if !success {
                    return Ok(Err(format!(
                        "Flyway recorded version {version} as failed: check what it left, then `flyway repair`"
                    )));
                }
                state.insert(version, !kind.starts_with("UNDO"));
            }
            versions.extend(state.into_iter().filter(|(_, applied)| *applied).map(|(version, _)| version));
        }
        Tool::Sqlx => {
            let rows = client.query("SELECT version, success FROM _sqlx_migrations ORDER BY version", &[]).await?;
            for row in rows {
                let (version, success): (i64, bool) = (row.get(0), row.get(1));
                if !success {
                    return Ok(Err(format!("sqlx recorded version {version} as failed: check what it left")));
                }
                versions.push(version);
            }
        }
    }
    Ok(Ok(versions))
}
