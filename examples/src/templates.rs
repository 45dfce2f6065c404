//! `migrate init --template NAME`: commented configuration files.

use std::path::Path;

use migrate_core::Error;

/// Template names and texts.
pub const TEMPLATES: [(&str, &str); 4] = [
    ("standard", include_str!("../templates/standard.toml")),
    ("incremental", include_str!("../templates/incremental.toml")),
    ("bulk", include_str!("../templates/bulk.toml")),
    ("transform", include_str!("../templates/transform.toml")),
];

/// Writes template `name` to `out`, refusing to overwrite an existing file.
pub fn write(name: &str, out: &Path) -> Result<(), Error> {
    let (_, text) = TEMPLATES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).collect();
        Error::config(format!(
            "unknown template {name:?} (use one of {})",
            names.join(", ")
        ))
    })?;
    if out.exists() {
        return Err(Error::config(format!(
            "{} exists; not overwriting it",
            out.display()
        )));
    }
    std::fs::write(out, text).map_err(|e| {
        Error::with_source(
            migrate_core::ErrorKind::Config,
            format!("cannot write {}", out.display()),
            e,
        )
    })?;
    println!("wrote {} ({name} template)", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        std::env::set_var("SOURCE_PASSWORD", "x");
        std::env::set_var("TARGET_PASSWORD", "y");
        std::env::set_var("MIGRATE_MASK_KEY", "a-key-of-sixteen-bytes-or-more");
        for (name, text) in TEMPLATES {
            let s = crate::config::parse(text, name, name)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
            assert_eq!(s.checkpoint_url, "sqlite://migration.db");
        }
    }
}
