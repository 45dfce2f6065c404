//! Serde helpers for human-written durations (`"1s"`, `"250ms"`, `"5m"`, `"4h"`) and byte sizes
//! (`"512MiB"`, `"2GB"`), as config files and reports spell them.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses `"250ms"`, `"1s"`, `"1.5s"`, `"5m"`, `"4h"`, `"2d"`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| {
        Error::config(format!(
            "invalid duration {s:?}: expected e.g. \"30s\", \"5m\", \"4h\""
        ))
    })?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60.0,
        "h" | "hr" | "hours" => n * 3600.0,
        "d" | "days" => n * 86400.0,
        other => {
            return Err(Error::config(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use ms, s, m, h, d)"
            )))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::config(format!(
            "invalid duration {s:?}: must be positive"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Parses `"512MiB"`, `"2GB"`, `"64KiB"`, `"100MB"`, a bare number of bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| {
        Error::config(format!(
            "invalid size {s:?}: expected e.g. \"512MiB\" or \"2GB\""
        ))
    })?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(Error::config(format!(
                "invalid size {s:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            )))
        }
    };
    if !n.is_finite() || n < 0.0 {
        return Err(Error::config(format!(
            "invalid size {s:?}: must be positive"
        )));
    }
    Ok((n * mult).round() as u64)
}

/// `#[serde(with = "duration")]` for `Duration` fields written as strings.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `"1s"`-style text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads `"1s"`-style text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "opt_duration")]` for `Option<Duration>` fields.
pub mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `"1s"`-style text or null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads `"1s"`-style text or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `#[serde(with = "durations")]` for `Vec<Duration>` fields.
pub mod durations {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes a list of `"1s"`-style texts.
    pub fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(|d| super::format_duration(*d)))
    }

    /// Reads a list of `"1s"`-style texts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| super::parse_duration(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("4h").unwrap(), Duration::from_secs(14400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("4 fortnights")
            .unwrap_err()
            .to_string()
            .contains("fortnights"));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert!(parse_bytes("12 parsecs").is_err());
    }
}
