//! The conversion as a target will carry it, as text: each table's columns as a `CREATE TABLE`
//! in the target's own type names ([`Sink::ddl_type`]), then its keys, indexes and
//! constraints — those the sink builds and those it leaves out, with the reason
//! ([`Sink::plan_objects`]). What `--dry-run` prints and
//! what the fixtures' expected files hold; computed without touching the target.

use std::fmt::Write as _;

use migrate_core::{ObjectOutcome, Sink, TableInfo};

use crate::convert::Converted;

/// What the target leaves out of each table: every object `sink` will not create.
pub fn dropped(conv: &Converted, sink: &dyn Sink) -> Vec<ObjectOutcome> {
    conv.tables
        .iter()
        .flat_map(|t| sink.plan_objects(&t.info))
        .filter(|o| o.not_created.is_some())
        .collect()
}

/// `table`'s columns as `(name, the target's type, NOT NULL)`.
pub fn target_columns(sink: &dyn Sink, table: &TableInfo) -> Vec<(String, String, bool)> {
    table
        .schema
        .columns
        .iter()
        .map(|c| {
            // No name from the sink: a type it has none for (the table fails when created).
            let ty = sink
                .ddl_type(table, c)
                .unwrap_or_else(|| format!("{} /* no {} type */", c.data_type, sink.kind()));
            (c.name.clone(), ty, !c.nullable)
        })
        .collect()
}

/// Every table of `conv` as `sink`'s target would hold it, in file order; `files_from` is cut
/// from the front of each file's path (so the text does not depend on where the folder is).
pub fn target_ddl(conv: &Converted, sink: &dyn Sink, files_from: &std::path::Path) -> String {
    let mut out = String::new();
    for t in &conv.tables {
        let file = t.file.strip_prefix(files_from).unwrap_or(&t.file);
        let _ = writeln!(out, "-- {}:{}", file.display(), t.line);
        let _ = writeln!(out, "CREATE TABLE {} (", t.info.name);
        let lines: Vec<String> = target_columns(sink, &t.info)
            .into_iter()
            .map(|(name, ty, not_null)| match not_null {
                true => format!("  {name} {ty} NOT NULL"),
                false => format!("  {name} {ty}"),
            })
            .collect();
        let _ = writeln!(out, "{}\n);", lines.join(",\n"));
        for o in sink.plan_objects(&t.info) {
            let _ = match &o.not_created {
                None => writeln!(out, "-- built: {} {}", o.kind, o.name),
                Some(why) => writeln!(out, "-- dropped: {} {}: {why}", o.kind, o.name),
            };
        }
        out.push('\n');
    }
    for s in &conv.skipped {
        let at =
            s.at.strip_prefix(&*files_from.to_string_lossy())
                .unwrap_or(&s.at);
        let at = at.trim_start_matches('/');
        let _ = writeln!(out, "-- skipped {} ({at}): {}", s.what, s.why);
    }
    out
}
