//! The folder of DDL files, in the order they run: by the number each name starts with,
//! compared as a number (`9_` before `10_`, `00_` first, gaps allowed), files sharing a number
//! by name. A `.sql` file whose name starts with no number has no place in that order: it is
//! refused, named, rather than run first or last by guess.

use std::path::{Path, PathBuf};

use migrate_core::{Error, Result};

/// One DDL file and its place in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlFile {
    /// Where it is.
    pub path: PathBuf,
    /// The number its name starts with.
    pub number: u64,
    /// Its file name.
    pub name: String,
}

/// The `.sql` files of `dir` (not its subfolders), in order.
pub fn ordered(dir: &Path) -> Result<Vec<DdlFile>> {
    let unreadable =
        |e: std::io::Error| Error::config(format!("DDL folder {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let is_sql = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("sql"));
        if !is_sql || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(Error::config(format!(
                "DDL file {}: its name starts with no number, so its place in the order is unknown (name it like 05_orders.sql)",
                path.display()
            )));
        }
        let number = digits.parse::<u64>().map_err(|_| {
            Error::config(format!(
                "DDL file {}: {digits} is too large a number to order by",
                path.display()
            ))
        })?;
        files.push(DdlFile { path, number, name });
    }
    if files.is_empty() {
        return Err(Error::config(format!(
            "DDL folder {} holds no .sql file",
            dir.display()
        )));
    }
    files.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn folder(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in names {
            std::fs::write(dir.path().join(n), "SELECT 1;").unwrap();
        }
        dir
    }

    #[test]
    fn files_run_in_the_order_of_their_numbers_not_their_spelling() {
        let dir = folder(&[
            "10_late.sql",
            "9_nine.sql",
            "00_foundation_tables.sql",
            "100_last.SQL",
            "02_b.sql",
            "02_a.sql",
            "notes.txt",
        ]);
        std::fs::create_dir(dir.path().join("01_folder.sql")).unwrap();
        let names: Vec<String> = ordered(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            [
                "00_foundation_tables.sql",
                "02_a.sql",
                "02_b.sql",
                "9_nine.sql",
                "10_late.sql",
                "100_last.SQL"
            ]
        );
    }

    #[test]
    fn a_file_without_a_number_or_a_folder_without_files_is_refused_by_name() {
        let dir = folder(&["01_a.sql", "setup.sql"]);
        let e = ordered(dir.path()).unwrap_err();
        assert!(e.to_string().contains("setup.sql"), "{e}");
        let empty = folder(&["readme.md"]);
        assert!(ordered(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no .sql file"));
        let e = ordered(Path::new("/nonexistent/ddl")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ddl"), "{e}");
    }
}
