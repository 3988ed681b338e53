//! Where a descriptor element is in its `.proto` file, from the SourceCodeInfo protox keeps.
//!
//! Lint and breaking findings point where buf points: at a path into the file's descriptor
//! (e.g. `[4, 0, 2, 1, 1]`, the name of the second field of the first message).

use std::collections::HashMap;

use prost_types::FileDescriptorProto;

/// Field numbers of descriptor.proto used to build source paths.
pub mod tag {
    /// FileDescriptorProto.
    pub const FILE_PACKAGE: i32 = 2;
    pub const FILE_DEPENDENCY: i32 = 3;
    pub const FILE_MESSAGE: i32 = 4;
    pub const FILE_ENUM: i32 = 5;
    pub const FILE_SERVICE: i32 = 6;
    pub const FILE_EXTENSION: i32 = 7;
    pub const FILE_OPTIONS: i32 = 8;
    pub const FILE_SYNTAX: i32 = 12;
    /// DescriptorProto.
    pub const MESSAGE_NAME: i32 = 1;
    pub const MESSAGE_FIELD: i32 = 2;
    pub const MESSAGE_NESTED: i32 = 3;
    pub const MESSAGE_ENUM: i32 = 4;
    pub const MESSAGE_EXTENSION: i32 = 6;
    pub const MESSAGE_OPTIONS: i32 = 7;
    pub const MESSAGE_ONEOF: i32 = 8;
    /// FieldDescriptorProto.
    pub const FIELD_NAME: i32 = 1;
    pub const FIELD_TYPE: i32 = 5;
    pub const FIELD_TYPE_NAME: i32 = 6;
    pub const FIELD_OPTIONS: i32 = 8;
    pub const FIELD_JSON_NAME: i32 = 10;
    /// OneofDescriptorProto.
    pub const ONEOF_NAME: i32 = 1;
    /// EnumDescriptorProto.
    pub const ENUM_NAME: i32 = 1;
    pub const ENUM_VALUE: i32 = 2;
    pub const ENUM_OPTIONS: i32 = 3;
    pub const ENUM_OPTION_ALLOW_ALIAS: i32 = 2;
    /// EnumValueDescriptorProto.
    pub const ENUM_VALUE_NAME: i32 = 1;
    pub const ENUM_VALUE_NUMBER: i32 = 2;
    /// ServiceDescriptorProto.
    pub const SERVICE_NAME: i32 = 1;
    pub const SERVICE_METHOD: i32 = 2;
    /// MethodDescriptorProto.
    pub const METHOD_NAME: i32 = 1;
    pub const METHOD_INPUT: i32 = 2;
    pub const METHOD_OUTPUT: i32 = 3;
    pub const METHOD_OPTIONS: i32 = 4;
    pub const METHOD_OPTION_IDEMPOTENCY: i32 = 34;
}

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// Where buf points when it has no element to point at: the top of the file.
    pub const FILE: Pos = Pos { line: 1, column: 1 };
}

/// A position, and the rules `// buf:lint:ignore RULE` comments silence there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub pos: Pos,
    pub ignored: Vec<String>,
}

impl From<Pos> for Loc {
    fn from(pos: Pos) -> Loc {
        Loc { pos, ignored: Vec::new() }
    }
}

/// The spans and leading comments of one file, by source path.
#[derive(Debug, Default)]
pub struct Spans {
    starts: HashMap<Vec<i32>, (Pos, Pos)>,
    comments: HashMap<Vec<i32>, String>,
}

impl Spans {
    /// The spans of `file`, whose text is `source` (to count columns the way buf does).
    pub fn new(file: &FileDescriptorProto, source: &str) -> Spans {
        let lines: Vec<&str> = source.split('\n').collect();
        let column = |line: i32, byte: i32| -> u32 {
            match lines.get(line as usize) {
                Some(text) => display_column(text, byte as usize),
                None => byte as u32 + 1,
            }
        };
        let mut starts: HashMap<Vec<i32>, (Pos, Pos)> = HashMap::new();
        let mut comments: HashMap<Vec<i32>, String> = HashMap::new();
        for location in file.source_code_info.iter().flat_map(|info| &info.location) {
            if let Some(comment) = &location.leading_comments {
                comments.entry(location.path.clone()).or_insert_with(|| comment.clone());
            }
            let span = &location.span;
            let (start, end) = match span.len() {
                3 => ((span[0], span[1]), (span[0], span[2])),
                4 => ((span[0], span[1]), (span[2], span[3])),
                _ => continue,
            };
            let start = Pos { line: start.0 as u32 + 1, column: column(start.0, start.1) };
            let end = Pos { line: end.0 as u32 + 1, column: column(end.0, end.1) };
            // A path can have several spans (`json_name = "x"` and then `"x"` alone). buf takes the
            // first protoc writes, which is the widest: the one that starts first and ends last.
            let widest = |(s, e): (Pos, Pos)| ((s.line, s.column), std::cmp::Reverse((e.line, e.column)));
            starts
                .entry(location.path.clone())
                .and_modify(|existing| {
                    if widest((start, end)) < widest(*existing) {
                        *existing = (start, end);
                    }
                })
                .or_insert((start, end));
        }
        Spans { starts, comments }
    }

    /// Where the element at `path` starts, with the rules silenced by `buf:lint:ignore` lines in
    /// the leading comments of the element or of any element around it (as buf does).
    pub fn loc(&self, path: &[i32]) -> Loc {
        let mut ignored = Vec::new();
        for end in 1..=path.len() {
            let Some(comment) = self.comments.get(&path[..end]) else { continue };
            for line in comment.lines() {
                if let Some(rule) = line.trim().strip_prefix("buf:lint:ignore") {
                    ignored.push(rule.trim().to_owned());
                }
            }
        }
        Loc { pos: self.at(path), ignored }
    }

    /// Where the element at `path` starts.
    pub fn get(&self, path: &[i32]) -> Option<Pos> {
        self.starts.get(path).map(|(start, _)| *start)
    }

    /// Where the element at `path` starts, or the top of the file when protox kept no span.
    pub fn at(&self, path: &[i32]) -> Pos {
        self.get(path).unwrap_or(Pos::FILE)
    }
}

/// The 1-based column buf reports for byte `byte` of `line`. protox counts bytes; buf counts
/// what a terminal shows: a tab moves to the next multiple of 4, a wide (CJK) character takes 2,
/// any other character 1.
pub fn display_column(line: &str, byte: usize) -> u32 {
    let mut column = 0u32;
    for (offset, c) in line.char_indices() {
        if offset >= byte {
            break;
        }
        column = match c {
            '\t' => (column / 4 + 1) * 4,
            c if is_wide(c) => column + 2,
            _ => column + 1,
        };
    }
    column + 1
}

/// East Asian wide and fullwidth characters (the common ranges).
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD)
}

/// `path` with `more` appended.
pub fn child(path: &[i32], more: &[i32]) -> Vec<i32> {
    let mut path = path.to_vec();
    path.extend_from_slice(more);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_like_buf() {
        // Measured with buf 1.75: tabs stop at multiples of 4, é is 1 wide, 日本 4.
        assert_eq!(display_column("\t\tstring A1 = 1;", 9), 16);
        assert_eq!(display_column("  a.v1.M\tB1 = 2;", 9), 13);
        assert_eq!(display_column("  /* é */ string C1 = 3;", 18), 18);
        assert_eq!(display_column("  /* 日本 */\tstring D1 = 4;", 22), 24);
        assert_eq!(display_column(" int32\t\tE1 = 5;", 8), 13);
    }
}
