//! Connection settings from a URL, TLS, and the connection pool. Passwords never reach
//! `Debug`, logs or reports.

use std::fmt;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use migrate_core::{Error, ErrorKind, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::{connector, SslMode};

/// Session settings every connection starts with: canonical time zone and string escaping,
/// which the literal rendering and timestamp handling rely on.
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c standard_conforming_strings=on -c DateStyle=ISO";

/// Where and how to connect.
#[derive(Clone)]
pub struct PgConfig {
    config: tokio_postgres::Config,
    redacted: String,
    ssl: SslMode,
    root_cert: Option<String>,
    /// Connections in the pool (default 8).
    pub pool_size: usize,
}

impl PgConfig {
    /// Parses a `postgres://user:password@host:port/db?options` URL (or a key=value string).
    /// `sslmode` takes libpq's values (disable, allow, prefer, require, verify-ca,
    /// verify-full; default prefer) and `sslrootcert` a PEM file of trusted CAs. The error names
    /// the URL with its password removed.
    pub fn from_url(url: &str) -> Result<Self> {
        let redacted = redact(url);
        let (rest, ssl, root_cert) = take_tls_params(url, &redacted)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!("invalid Postgres URL {redacted}"),
                e,
            )
        })?;
        config.ssl_mode(match ssl {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::Verify => tokio_postgres::config::SslMode::Require,
        });
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {SESSION_OPTIONS}"),
            _ => SESSION_OPTIONS.to_string(),
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("migrate");
        }
        Ok(PgConfig {
            config,
            redacted,
            ssl,
            root_cert,
            pool_size: 8,
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The TLS mode.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    fn tls(&self) -> Result<MakeRustlsConnect> {
        connector(self.ssl, self.root_cert.as_deref())
    }

    /// A pool of `pool_size` connections.
    pub fn pool(&self) -> Result<Pool> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .build()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Config,
                    format!("cannot build a pool for {}", self.redacted),
                    e,
                )
            })
    }

    /// One dedicated connection (not pooled), its driver task spawned.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) =
            self.config.connect(self.tls()?).await.map_err(|e| {
                crate::error::pg_error(e, &format!("connecting to {}", self.redacted))
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Postgres connection ended");
            }
        });
        Ok(client)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted)
            .field("ssl", &self.ssl)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Takes `sslmode` and `sslrootcert` out of the URL (the driver knows fewer modes than libpq).
fn take_tls_params(url: &str, redacted: &str) -> Result<(String, SslMode, Option<String>)> {
    let mut ssl = SslMode::Prefer;
    let mut root = None;
    let mut bad = None;
    let mut keep = |kv: &str| -> bool {
        if let Some(v) = kv.strip_prefix("sslmode=") {
            match SslMode::parse(v) {
                Some(m) => ssl = m,
                None => bad = Some(v.to_string()),
            }
            false
        } else if let Some(v) = kv.strip_prefix("sslrootcert=") {
            root = Some(v.to_string());
            false
        } else {
            true
        }
    };
    let rest = if url.contains("://") {
        match url.split_once('?') {
            Some((head, q)) => {
                let kept: Vec<&str> = q.split('&').filter(|kv| keep(kv)).collect();
                if kept.is_empty() {
                    head.to_string()
                } else {
                    format!("{head}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        url.split_whitespace()
            .filter(|kv| keep(kv))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(v) = bad {
        return Err(Error::config(format!(
            "Postgres URL {redacted}: unknown sslmode {v:?} (use disable, allow, prefer, require, verify-ca or verify-full)"
        )));
    }
    Ok((rest, ssl, root))
}

/// Removes the password from a URL (`postgres://u:secret@h` → `postgres://u:***@h`) or from a
/// key=value string (`password=secret` → `password=***`).
pub fn redact(url: &str) -> String {
    if let Some(rest) = url.split_once("://") {
        let (scheme, rest) = rest;
        let (auth_end, tail) = match rest.find('@') {
            Some(at) => (at, &rest[at..]),
            None => return url.to_string(),
        };
        let auth = &rest[..auth_end];
        let user = auth.split(':').next().unwrap_or("");
        let masked = if auth.contains(':') {
            format!("{user}:***")
        } else {
            user.to_string()
        };
        let tail = redact_query_password(tail);
        return format!("{scheme}://{masked}{tail}");
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query_password(tail: &str) -> String {
    match tail.split_once('?') {
        Some((head, q)) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| {
                    if kv.starts_with("password=") {
                        "password=***".into()
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            format!("{head}?{}", q.join("&"))
        }
        None => tail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let c = PgConfig::from_url("postgres://app:hunter2@db.example:5432/prod?password=hunter3")
            .unwrap();
        let shown = format!("{c:?} {}", c.redacted());
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("app:***@db.example:5432/prod"), "{shown}");
        assert_eq!(
            redact("host=x password=s3cret user=u"),
            "host=x password=*** user=u"
        );
        let e = PgConfig::from_url("postgres://u:topsecret@h/db?port=notaport").unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
        assert!(e.to_string().contains("u:***@h"), "{e}");
    }
}
