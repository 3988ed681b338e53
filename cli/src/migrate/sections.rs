//! Other tools' in-file annotations, read with their meaning: goose (`-- +goose Up`, `Down`,
//! `StatementBegin`/`End`, `NO TRANSACTION`) and dbmate (`-- migrate:up`, `-- migrate:down`,
//! `transaction:false`). A file with neither is plain SQL and runs whole.
//!
//! A section keeps the file's line numbers: the lines of the other sections are blanked, not
//! removed, so a server error position still points at the file's own line and column.

/// The tool whose annotations a file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `-- +goose Up` / `-- +goose Down` (pressly/goose).
    Goose,
    /// `-- migrate:up` / `-- migrate:down` (dbmate).
    Dbmate,
}

impl Dialect {
    /// The marker that opens the up section, for messages and new files.
    pub fn up_marker(self) -> &'static str {
        match self {
            Dialect::Goose => "-- +goose Up",
            Dialect::Dbmate => "-- migrate:up",
        }
    }

    /// The marker that opens the down section.
    pub fn down_marker(self) -> &'static str {
        match self {
            Dialect::Goose => "-- +goose Down",
            Dialect::Dbmate => "-- migrate:down",
        }
    }
}

/// One direction of a file: the SQL to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The file's text with every line outside this section blanked.
    pub sql: String,
    /// The section asks to run outside a transaction.
    pub no_transaction: bool,
}

/// A file read with its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sections {
    /// Whose annotations; `None` for plain SQL.
    pub dialect: Option<Dialect>,
    /// What applies the migration.
    pub up: Section,
    /// What undoes it, when the file has a down section with SQL in it.
    pub down: Option<Section>,
}

/// Why a file's annotations cannot be followed: the line and what is wrong.
pub type Refusal = (usize, String);

/// Splits `text` into its sections. Plain SQL (no annotation of either tool) is one up section,
/// with plat's and sqlx's first-line no-transaction directive honoured.
pub fn split(text: &str) -> Result<Sections, Vec<Refusal>> {
    let goose = text.lines().any(|line| goose_annotation(line).is_some());
    let dbmate = text.lines().any(|line| dbmate_annotation(line).is_some());
    match (goose, dbmate) {
        (false, false) => Ok(Sections {
            dialect: None,
            up: Section { sql: text.to_owned(), no_transaction: super::sql::wants_no_transaction(text) },
            down: None,
        }),
        (true, true) => {
            Err(vec![(1, "it has both goose (`-- +goose`) and dbmate (`-- migrate:`) annotations".to_owned())])
        }
        (true, false) => split_goose(text),
        (false, true) => split_dbmate(text),
    }
}

/// `-- +goose Up` → `Some("Up")`: what follows the goose prefix, trimmed.
fn goose_annotation(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("--")?.trim_start().strip_prefix("+goose")?;
    Some(rest.trim())
}

/// `-- migrate:up transaction:false` → `Some("up transaction:false")`.
fn dbmate_annotation(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("--")?.trim_start().strip_prefix("migrate:")?;
    Some(rest.trim())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Before,
    Up,
    Down,
}

/// Blanks every line of `text` whose part is not `keep`; the markers themselves stay (they are
/// comments) only in their own section.
fn keep_lines(text: &str, parts: &[Part], keep: Part) -> String {
    let mut out = String::with_capacity(text.len());
    for (line, part) in text.split_inclusive('\n').zip(parts) {
        if *part == keep {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Whether a section holds anything but comments and whitespace.
fn has_sql(sql: &str) -> bool {
    !super::sql::statements(sql).is_empty()
}

fn split_goose(text: &str) -> Result<Sections, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut parts = Vec::new();
    let mut part = Part::Before;
    let (mut no_transaction, mut seen_up, mut seen_down) = (false, false, false);
    let mut open_statement: Option<usize> = None;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        if let Some(annotation) = goose_annotation(line) {
            match annotation.to_ascii_lowercase().as_str() {
                "up" if seen_up => refusals.push((number, "a second `-- +goose Up`".to_owned())),
                "up" => {
                    seen_up = true;
                    part = Part::Up;
                }
                "down" if seen_down => refusals.push((number, "a second `-- +goose Down`".to_owned())),
                "down" => {
                    seen_down = true;
                    part = Part::Down;
                }
                // plat sends a section whole and the server splits it, dollar quotes and all:
                // the statement markers goose needs for its own splitting change nothing here.
                "statementbegin" => open_statement = Some(number),
                "statementend" => open_statement = None,
                "no transaction" => no_transaction = true,
                _ => refusals.push((
                    number,
                    format!(
                        "`-- +goose {annotation}` is not an annotation plat can follow (it knows Up, Down, \
                         StatementBegin, StatementEnd and NO TRANSACTION)"
                    ),
                )),
            }
        }
        parts.push(part);
    }
    if let Some(line) = open_statement {
        refusals.push((line, "`-- +goose StatementBegin` has no `-- +goose StatementEnd`".to_owned()));
    }
    // A file whose annotations are wrong says so once; what follows from them would be noise.
    if refusals.is_empty() && !seen_up {
        refusals.push((1, "a goose file needs a `-- +goose Up` line".to_owned()));
    }
    let before = keep_lines(text, &parts, Part::Before);
    if refusals.is_empty() && has_sql(&before) {
        let line = super::sql::statements(&before)[0].line;
        refusals
            .push((line, "SQL before `-- +goose Up` belongs to no direction; goose would refuse it too".to_owned()));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let up = Section { sql: keep_lines(text, &parts, Part::Up), no_transaction };
    let down = Section { sql: keep_lines(text, &parts, Part::Down), no_transaction };
    Ok(Sections { dialect: Some(Dialect::Goose), up, down: has_sql(&down.sql).then_some(down) })
}

fn split_dbmate(text: &str) -> Result<Sections, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut parts = Vec::new();
    let mut part = Part::Before;
    let (mut up_no_transaction, mut down_no_transaction) = (false, false);
    let (mut seen_up, mut seen_down) = (false, false);
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        if let Some(annotation) = dbmate_annotation(line) {
            let mut words = annotation.split_whitespace();
            let direction = words.next().unwrap_or_default();
            let mut no_transaction = false;
            for option in words {
                match option {
                    "transaction:false" => no_transaction = true,
                    "transaction:true" => no_transaction = false,
                    other => refusals.push((number, format!("dbmate option `{other}` is not one plat can follow"))),
                }
            }
            match direction {
                "up" if seen_up => refusals.push((number, "a second `-- migrate:up`".to_owned())),
                "up" => {
                    seen_up = true;
                    part = Part::Up;
                    up_no_transaction = no_transaction;
                }
                "down" if seen_down => refusals.push((number, "a second `-- migrate:down`".to_owned())),
                "down" => {
                    seen_down = true;
                    part = Part::Down;
                    down_no_transaction = no_transaction;
                }
                other => refusals.push((number, format!("`-- migrate:{other}` is neither `up` nor `down`"))),
            }
        }
        parts.push(part);
    }
    if refusals.is_empty() && !seen_up {
        refusals.push((1, "a dbmate file needs a `-- migrate:up` line".to_owned()));
    }
    let before = keep_lines(text, &parts, Part::Before);
    if refusals.is_empty() && has_sql(&before) {
        let line = super::sql::statements(&before)[0].line;
        refusals.push((line, "SQL before `-- migrate:up` belongs to no direction".to_owned()));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let up = Section { sql: keep_lines(text, &parts, Part::Up), no_transaction: up_no_transaction };
    let down = Section { sql: keep_lines(text, &parts, Part::Down), no_transaction: down_no_transaction };
    Ok(Sections { dialect: Some(Dialect::Dbmate), up, down: has_sql(&down.sql).then_some(down) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sql_is_one_up_section() {
        let sections = split("CREATE TABLE a (x int);\n").unwrap();
        assert_eq!(
            (sections.dialect, sections.up.sql.as_str(), sections.down),
            (None, "CREATE TABLE a (x int);\n", None)
        );
        assert!(split("-- plat:no-transaction\nVACUUM;").unwrap().up.no_transaction);
    }

    #[test]
    fn goose_sections_keep_their_lines() {
        let text = "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x int);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE a;\n";
        let sections = split(text).unwrap();
        assert_eq!(sections.dialect, Some(Dialect::Goose));
        assert_eq!(
            sections.up.sql,
            "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x int);\n-- +goose StatementEnd\n\n\n\n"
        );
        assert_eq!(sections.down.unwrap().sql, "\n\n\n\n\n-- +goose Down\nDROP TABLE a;\n");
        assert!(!sections.up.no_transaction);
        let no_tx = split("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON a (x);\n").unwrap();
        assert!(no_tx.up.no_transaction && no_tx.down.is_none());
        // Lowercase, as newer goose versions write them.
        assert!(split("-- +goose up\nSELECT 1;\n-- +goose down\nSELECT 2;\n").unwrap().down.is_some());
    }

    #[test]
    fn goose_mistakes_are_all_refused() {
        let refusals =
            split("SELECT 0;\n-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose ENVSUB ON\n").unwrap_err();
        let lines: Vec<usize> = refusals.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [5, 3], "{refusals:?}");
        let refusals = split("SELECT 0;\n-- +goose Up\nSELECT 1;\n").unwrap_err();
        assert_eq!(refusals[0].0, 1, "{refusals:?}");
        assert!(split("-- +goose Down\nDROP TABLE a;\n").is_err());
    }

    #[test]
    fn dbmate_sections_and_options() {
        let text = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (x);\n\n-- migrate:down\nDROP INDEX i;\n";
        let sections = split(text).unwrap();
        assert_eq!(sections.dialect, Some(Dialect::Dbmate));
        assert!(sections.up.no_transaction);
        let down = sections.down.unwrap();
        assert!(!down.no_transaction);
        assert_eq!(down.sql, "\n\n\n-- migrate:down\nDROP INDEX i;\n");
        assert!(split("-- migrate:up\nSELECT 1;\n-- migrate:down\n").unwrap().down.is_none());
        assert!(split("-- migrate:sideways\nSELECT 1;\n").is_err());
        assert!(split("-- migrate:up\nSELECT 1;\n-- +goose Down\n").is_err());
    }
}
