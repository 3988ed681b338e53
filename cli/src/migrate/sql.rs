//! Just enough SQL lexing to check a migration before it runs: where statements start, what
//! they start with, and where a server error position falls in the file.
//!
//! The server parses and runs each file whole; this never splits a file to run it. It only finds
//! statement boundaries the way psql does (quotes, dollar quotes, nested comments, and the
//! `BEGIN ATOMIC ... END` bodies of SQL functions), to refuse files that would break plat's
//! transaction handling before any of them runs.

/// First-line directives that run a file outside a transaction: plat's own, and sqlx's.
const NO_TRANSACTION: [&str; 2] = ["-- plat:no-transaction", "-- no-transaction"];

/// Whether the first line of `sql` asks to run it outside a transaction.
pub fn wants_no_transaction(sql: &str) -> bool {
    let first = sql.lines().next().unwrap_or("").trim_end();
    NO_TRANSACTION.contains(&first)
}

/// One statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Line (1-based) of its first token.
    pub line: usize,
    /// Its first two words, uppercased (`["ROLLBACK", "TO"]`), for recognising transaction control.
    pub words: Vec<String>,
}

/// The statements of `sql` that hold more than comments and whitespace.
pub fn statements(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut current: Option<Statement> = None;
    // Every word of the current statement, uppercased, up to a few: enough to tell
    // `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    let mut head: Vec<String> = Vec::new();
    let (mut paren_depth, mut begin_depth) = (0usize, 0usize);
    let mut line = 1;
    let mut i = 0;

    let start = |current: &mut Option<Statement>, line: usize| {
        if current.is_none() {
            *current = Some(Statement { line, words: Vec::new() });
        }
    };

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if bytes[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            b';' => {
                i += 1;
                if paren_depth == 0 && begin_depth == 0 {
                    if let Some(statement) = current.take() {
                        statements.push(statement);
                    }
                    head.clear();
                }
            }
            b'\'' => {
                start(&mut current, line);
                // `E'...'` strings take backslash escapes; the `E` was read as a word just before.
                let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E') && (i < 2 || !is_word_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes, &mut line);
            }
            b'"' => {
                start(&mut current, line);
                i = skip_quoted(bytes, i, b'"', false, &mut line);
            }
            b'$' if dollar_tag(bytes, i).is_some() => {
                start(&mut current, line);
                let tag = dollar_tag(bytes, i).expect("checked");
                let body = i + tag.len();
                let end = find(bytes, body, tag).map_or(bytes.len(), |end| end + tag.len());
                line += bytes[i..end].iter().filter(|&&b| b == b'\n').count();
                i = end;
            }
            b'(' => {
                start(&mut current, line);
                paren_depth += 1;
                i += 1;
            }
            b')' => {
                start(&mut current, line);
                paren_depth = paren_depth.saturating_sub(1);
                i += 1;
            }
            c if is_word_start(c) => {
                start(&mut current, line);
                let begin = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                let word = sql[begin..i].to_ascii_uppercase();
                let statement = current.as_mut().expect("started");
                if statement.words.len() < 2 {
                    statement.words.push(word.clone());
                }
                if head.len() < 4 {
                    head.push(word.clone());
                }
                // psql's rule: in `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, semicolons between
                // BEGIN (ATOMIC) and its END belong to the function body.
                if paren_depth == 0 && creates_routine(&head) {
                    match word.as_str() {
                        "BEGIN" => begin_depth += 1,
                        "CASE" if begin_depth > 0 => begin_depth += 1,
                        "END" if begin_depth > 0 => begin_depth -= 1,
                        _ => {}
                    }
                }
            }
            _ => {
                start(&mut current, line);
                // Step over a whole UTF-8 character.
                i += 1;
                while i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
                    i += 1;
                }
            }
        }
    }
    statements.extend(current);
    statements
}

fn creates_routine(head: &[String]) -> bool {
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    matches!(
        head.as_slice(),
        ["CREATE", "FUNCTION" | "PROCEDURE", ..] | ["CREATE", "OR", "REPLACE", "FUNCTION" | "PROCEDURE", ..]
    )
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Skips a quoted string or identifier starting at `i`; a doubled quote stays inside.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool, line: &mut usize) -> usize {
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            b'\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `$tag$` (or `$$`) starting at `i`, unless the `$` belongs to a word or a parameter like `$1`.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<&[u8]> {
    if i > 0 && is_word_byte(bytes[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if bytes.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < bytes.len() && bytes[j] != b'$' {
        if !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] >= 0x80) {
            return None;
        }
        j += 1;
    }
    (j < bytes.len()).then(|| &bytes[i..=j])
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|at| at + from)
}

/// Whether a statement ends or starts a transaction: plat owns the transaction of a migration,
/// and a `COMMIT` in the file would commit half of it with no history row.
pub fn is_transaction_control(statement: &Statement) -> bool {
    let first = statement.words.first().map(String::as_str);
    let second = statement.words.get(1).map(String::as_str);
    match first {
        Some("BEGIN" | "COMMIT" | "END" | "ABORT") => true,
        Some("START") => second == Some("TRANSACTION"),
        // `ROLLBACK TO [SAVEPOINT] x` stays inside the transaction; plain `ROLLBACK` does not.
        Some("ROLLBACK") => second != Some("TO"),
        Some("PREPARE") => second == Some("TRANSACTION"),
        _ => false,
    }
}

/// Line and column (both 1-based, the column in characters) of the character at 1-based
/// `position` in `text`: PostgreSQL's error position counts characters, not bytes.
pub fn line_col(text: &str, position: usize) -> Option<(usize, usize)> {
    let (mut line, mut col) = (1, 1);
    for (index, c) in text.chars().enumerate() {
        if index + 1 == position {
            return Some((line, col));
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    // The server may point just past the end (an unexpected end of input).
    (position == text.chars().count() + 1).then_some((line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(sql: &str) -> Vec<usize> {
        statements(sql).iter().map(|statement| statement.line).collect()
    }

    #[test]
    fn splits_where_psql_would() {
        assert_eq!(lines("CREATE TABLE a (x int);\n\nINSERT INTO a VALUES (1);\n"), [1, 3]);
        assert_eq!(lines("-- only a comment;\n/* and ; a /* nested; */ block */\n"), Vec::<usize>::new());
        assert_eq!(lines("SELECT 'a;b', \"c;d\", E'\\';', $$;$$, $x$ $$; $x$;\nSELECT 2"), [1, 2]);
        assert_eq!(lines("SELECT 'it''s;';\nSELECT 1"), [1, 2]);
        assert_eq!(lines("SELECT $1; SELECT a$b;"), [1, 1]);
        assert_eq!(lines("DO $body$\nBEGIN\n  PERFORM 1;\nEND\n$body$;\nSELECT 1;"), [1, 6]);
    }

    #[test]
    fn sql_function_bodies_keep_their_semicolons() {
        let sql = "CREATE OR REPLACE FUNCTION f(begin int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN true THEN 1 END;\n  SELECT 2;\nEND;\nCOMMIT;";
        let statements = statements(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(statements[1].line, 6);
        assert!(is_transaction_control(&statements[1]));
    }

    #[test]
    fn recognises_transaction_control() {
        let control = |sql: &str| statements(sql).iter().any(is_transaction_control);
        for sql in ["BEGIN;", "begin transaction;", "COMMIT;", "END;", "ROLLBACK;", "START TRANSACTION;", "abort"] {
            assert!(control(sql), "{sql}");
        }
        for sql in
            ["ROLLBACK TO SAVEPOINT a;", "SAVEPOINT a;", "DO $$ BEGIN COMMIT; END $$;", "SELECT 'BEGIN';", "START_x;"]
        {
            assert!(!control(sql), "{sql}");
        }
    }

    #[test]
    fn directives_on_the_first_line_only() {
        assert!(wants_no_transaction("-- plat:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);"));
        assert!(wants_no_transaction("-- no-transaction  \nVACUUM;"));
        assert!(!wants_no_transaction("SELECT 1;\n-- plat:no-transaction\n"));
    }

    #[test]
    fn positions_count_characters() {
        let text = "SELECT 1;\nSELECT é, bad;\n";
        assert_eq!(line_col(text, 1), Some((1, 1)));
        assert_eq!(line_col(text, 11), Some((2, 1)));
        // `bad` follows a two-byte character: the column counts it once.
        assert_eq!(line_col(text, 21), Some((2, 11)));
        assert_eq!(line_col(text, 26), Some((3, 1)));
        assert_eq!(line_col(text, 27), None);
    }
}
