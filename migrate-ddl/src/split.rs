//! A DDL file cut into statements by sqlparser's tokenizer — so a `;` inside a string, a
//! quoted identifier, a comment or a dollar-quoted function body ends nothing — each statement
//! kept as its own text (sliced from the file, comments inside it included) with the file, line
//! and column where it starts.

use std::path::{Path, PathBuf};

use migrate_core::{Error, Result};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

/// One statement of a DDL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The file it is in.
    pub file: PathBuf,
    /// The line its first token is on (from 1).
    pub line: u64,
    /// The column of its first token (from 1).
    pub column: u64,
    /// Its text, without the closing `;`.
    pub text: String,
}

impl Statement {
    /// `file:line:column`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The statements of `text` (the content of `file`), in order.
pub fn split(file: &Path, text: &str) -> Result<Vec<Statement>> {
    // A byte-order mark (Windows editors) is not part of the first statement.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| {
            Error::validation(format!(
                "{}:{}:{}: {}",
                file.display(),
                e.location.line,
                e.location.column,
                e.message
            ))
        })?;
    let offsets = Offsets::new(text);
    let mut out = Vec::new();
    let mut start: Option<Location> = None;
    // A psql meta-command (`\connect db`, pg_dump's `\restrict`) ends at its line's end.
    let mut meta = false;
    for t in &tokens {
        let ends_meta = meta && matches!(t.token, Token::Whitespace(Whitespace::Newline));
        match &t.token {
            Token::Whitespace(_) if start.is_none() => {}
            _ if ends_meta || matches!(t.token, Token::SemiColon | Token::EOF) => {
                meta = false;
                if let Some(s) = start.take() {
                    let end = match t.token {
                        Token::EOF => text.len(),
                        _ => offsets.at(t.span.start),
                    };
                    let body = text[offsets.at(s)..end].trim_end().to_string();
                    out.push(Statement {
                        file: file.to_path_buf(),
                        line: s.line,
                        column: s.column,
                        text: body,
                    });
                }
            }
            _ if start.is_none() => {
                meta = t.token == Token::Backslash;
                start = Some(t.span.start);
            }
            _ => {}
        }
    }
    // The tokenizer may end without an EOF token: a last statement with no `;`.
    if let Some(s) = start {
        out.push(Statement {
            file: file.to_path_buf(),
            line: s.line,
            column: s.column,
            text: text[offsets.at(s)..].trim_end().to_string(),
        });
    }
    Ok(out)
}

/// Byte offsets of (line, column) locations, columns counted in characters.
struct Offsets<'a> {
    text: &'a str,
    lines: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut lines = vec![0];
        lines.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { text, lines }
    }

    fn at(&self, l: Location) -> usize {
        let Some(&line_start) = self.lines.get((l.line.max(1) - 1) as usize) else {
            return self.text.len();
        };
        self.text[line_start..]
            .char_indices()
            .nth((l.column.max(1) - 1) as usize)
            .map_or(self.text.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn texts(sql: &str) -> Vec<(u64, u64, String)> {
        split(Path::new("t.sql"), sql)
            .unwrap()
            .into_iter()
            .map(|s| (s.line, s.column, s.text))
            .collect()
    }

    #[test]
    fn semicolons_inside_strings_identifiers_comments_and_bodies_end_nothing() {
        let sql = "-- header; not a statement\n\
                   CREATE TABLE \"a;b\" (x text DEFAULT 'one; two');\n\
                   /* block; comment */ COMMENT ON TABLE \"a;b\" IS 'it''s; fine';\n\
                   CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  RAISE NOTICE 'x;y';\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n\
                   CREATE TABLE \"Ünï\" (y int)";
        let got = texts(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(
            got[0],
            (
                2,
                1,
                "CREATE TABLE \"a;b\" (x text DEFAULT 'one; two')".into()
            )
        );
        assert_eq!(got[1].0, 3);
        assert!(got[1].2.starts_with("COMMENT ON TABLE"), "{:?}", got[1]);
        assert!(got[1].2.ends_with("'it''s; fine'"), "{:?}", got[1]);
        assert!(
            got[2]
                .2
                .contains("RAISE NOTICE 'x;y';\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql"),
            "{:?}",
            got[2]
        );
        assert_eq!(got[3], (10, 1, "CREATE TABLE \"Ünï\" (y int)".into()));
    }

    #[test]
    fn a_statement_starting_mid_line_after_unicode_keeps_its_place_and_text() {
        let got = texts("SELECT 'ß'; SELECT 2;\n\n  SELECT 3;;");
        assert_eq!(
            got,
            vec![
                (1, 1, "SELECT 'ß'".to_string()),
                (1, 13, "SELECT 2".to_string()),
                (3, 3, "SELECT 3".to_string()),
            ]
        );
    }

    #[test]
    fn a_psql_meta_command_ends_at_its_line() {
        let got = texts("\\connect shop\nCREATE TABLE t (x int);\n");
        assert_eq!(got[0], (1, 1, "\\connect shop".to_string()));
        assert_eq!(got[1], (2, 1, "CREATE TABLE t (x int)".to_string()));
    }

    #[test]
    fn an_unterminated_string_is_an_error_naming_file_and_line() {
        let e = split(Path::new("05_x.sql"), "SELECT 1;\nSELECT 'oops;\n").unwrap_err();
        assert!(e.to_string().contains("05_x.sql:2:"), "{e}");
    }
}
