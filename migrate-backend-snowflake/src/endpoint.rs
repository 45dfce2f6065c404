//! Where a Snowflake account answers and who signs in:
//! `snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE` — the convention
//! of Snowflake's SQLAlchemy dialect — plus `host=`, `port=` and `protocol=` for a private
//! endpoint or the emulator, `private_key_file=` for key-pair sign-in instead of a password,
//! and `load=auto|bind|stage` for how a sink sends a chunk's rows ([`Load`]). The password
//! never shows in `Debug`.

use std::path::PathBuf;

use migrate_core::{Error, Result};

/// How the client signs in.
#[derive(Clone, PartialEq, Eq)]
pub enum SfAuth {
    /// User and password.
    Password(String),
    /// A key pair: the PKCS#8 private key file (a JWT signed with it replaces the password).
    KeyPair(PathBuf),
}

impl std::fmt::Debug for SfAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SfAuth::Password(_) => f.write_str("Password(<redacted>)"),
            SfAuth::KeyPair(path) => f.debug_tuple("KeyPair").field(path).finish(),
        }
    }
}

/// How a sink sends a chunk's rows to Snowflake (either way they land in a staging table and
/// one `MERGE` moves them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Load {
    /// Bound JSON texts for a chunk whose rows fit one text, a stage for a larger one.
    #[default]
    Auto,
    /// Bound JSON texts (`INSERT … FROM TABLE(FLATTEN(PARSE_JSON(?)))`), as many as it takes.
    Bind,
    /// Gzipped files `PUT` to a temporary stage, loaded by `COPY INTO`.
    Stage,
}

/// One account, database and schema, and the session settings to sign in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfEndpoint {
    /// `scheme://host:port` of the account's REST endpoint.
    pub base: String,
    /// The account identifier (`myorg-myaccount`, or a locator such as `xy12345.eu-west-1`).
    pub account: String,
    /// The login name.
    pub user: String,
    /// How the user signs in.
    pub auth: SfAuth,
    /// The database the session starts in.
    pub database: String,
    /// The schema the session starts in.
    pub schema: String,
    /// The warehouse statements run on, when named.
    pub warehouse: Option<String>,
    /// The role the session takes, when named.
    pub role: Option<String>,
    /// How a sink sends rows (`load=`).
    pub load: Load,
}

impl SfEndpoint {
    /// Reads a `snowflake://` URL (see the module docs).
    pub fn from_url(url: &str) -> Result<SfEndpoint> {
        // The URL itself may hold a password: errors show it with the password masked.
        let shown = mask_password(url);
        let bad = |why: &str| Error::config(format!("Snowflake URL {shown}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "snowflake" {
            return Err(bad("the scheme must be snowflake://"));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("a part is not valid percent-encoded UTF-8"))
        };
        let account = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no account (snowflake://USER@ACCOUNT/DATABASE/SCHEMA)"))?
            .to_string();
        let user = decode(parsed.username())?;
        if user.is_empty() {
            return Err(bad("no user (snowflake://USER@ACCOUNT/DATABASE/SCHEMA)"));
        }
        let path: Vec<&str> = parsed.path().trim_matches('/').split('/').collect();
        let [database, schema] = path.as_slice() else {
            return Err(bad("the path must be DATABASE/SCHEMA"));
        };
        if database.is_empty() || schema.is_empty() {
            return Err(bad("the path must be DATABASE/SCHEMA"));
        }
        let (mut host, mut port, mut protocol) = (None, None, "https".to_string());
        let (mut warehouse, mut role, mut key, mut load) = (None, None, None, Load::Auto);
        for (k, v) in parsed.query_pairs() {
            let v = v.to_string();
            match k.as_ref() {
                "warehouse" => warehouse = Some(v),
                "role" => role = Some(v),
                "host" => host = Some(v),
                "port" => {
                    port = Some(
                        v.parse::<u16>()
                            .map_err(|_| bad(&format!("port={v} is not a port number")))?,
                    )
                }
                "protocol" if v == "http" || v == "https" => protocol = v,
                "protocol" => return Err(bad("protocol= must be http or https")),
                "private_key_file" => key = Some(PathBuf::from(v)),
                "load" => {
                    load = match v.as_str() {
                        "auto" => Load::Auto,
                        "bind" => Load::Bind,
                        "stage" => Load::Stage,
                        _ => return Err(bad(&format!("load={v}: auto, bind or stage"))),
                    }
                }
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        let auth = match (parsed.password(), key) {
            (Some(_), Some(_)) => {
                return Err(bad("give a password or private_key_file=, not both"));
            }
            (Some(p), None) => SfAuth::Password(decode(p)?),
            (None, Some(k)) => SfAuth::KeyPair(k),
            (None, None) => {
                return Err(bad(
                    "no credentials: USER:PASSWORD@ACCOUNT, or ?private_key_file=PATH",
                ))
            }
        };
        let host = host.unwrap_or_else(|| format!("{account}.snowflakecomputing.com"));
        let base = match port {
            Some(p) => format!("{protocol}://{host}:{p}"),
            None => format!("{protocol}://{host}"),
        };
        Ok(SfEndpoint {
            base,
            account,
            user,
            auth,
            database: decode(database)?,
            schema: decode(schema)?,
            warehouse,
            role,
            load,
        })
    }
}

impl SfEndpoint {
    /// Who signs in where — endpoint, account, user, role — without the secret: two endpoints
    /// with the same principal can run each other's queries (another database or schema of the
    /// same account) with the same privileges.
    pub fn principal(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.base,
            self.account.to_ascii_uppercase(),
            self.user.to_ascii_uppercase(),
            self.role
                .as_deref()
                .unwrap_or_default()
                .to_ascii_uppercase()
        )
    }
}

/// `url` with the password between `:` and `@` replaced by `***`.
fn mask_password(url: &str) -> String {
    let Some(rest) = url.strip_prefix("snowflake://") else {
        return url.to_string();
    };
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("snowflake://{}:***{}", &rest[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

/// `%XX` escapes decoded (a URL's user, password and path parts).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_account_user_database_schema_and_session() {
        let e = SfEndpoint::from_url(
            "snowflake://loader:p%40ss@myorg-acct/NEW_DB/NEW_SCHEMA?warehouse=LOAD_WH&role=LOADER",
        )
        .unwrap();
        assert_eq!(e.base, "https://myorg-acct.snowflakecomputing.com");
        assert_eq!(
            (
                e.account.as_str(),
                e.user.as_str(),
                e.database.as_str(),
                e.schema.as_str()
            ),
            ("myorg-acct", "loader", "NEW_DB", "NEW_SCHEMA")
        );
        assert_eq!(e.auth, SfAuth::Password("p@ss".into()));
        assert_eq!(
            (e.warehouse.as_deref(), e.role.as_deref()),
            (Some("LOAD_WH"), Some("LOADER"))
        );
        // The emulator, and key-pair sign-in.
        let e = SfEndpoint::from_url(
            "snowflake://u@acct/db/s?host=127.0.0.1&port=8085&protocol=http&private_key_file=/k/rsa.p8",
        )
        .unwrap();
        assert_eq!(e.base, "http://127.0.0.1:8085");
        assert_eq!(e.auth, SfAuth::KeyPair("/k/rsa.p8".into()));
        // Neither errors nor Debug show the password.
        let e = SfEndpoint::from_url("snowflake://u:hunter2@acct/db/s?colour=red").unwrap_err();
        assert!(
            !e.to_string().contains("hunter2") && e.to_string().contains("colour"),
            "{e}"
        );
        let ok = SfEndpoint::from_url("snowflake://u:hunter2@acct/db/s").unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        for bad in [
            "snowflake://u:p@acct/db",
            "snowflake://u:p@acct/db/s/x",
            "snowflake://:p@acct/db/s",
            "snowflake://u@acct/db/s",
            "snowflake://u:p@acct/db/s?private_key_file=/k",
            "snowflake://u:p@acct/db/s?port=http",
            "snowflake://u:p@acct/db/s?protocol=ftp",
            "postgres://u:p@acct/db/s",
        ] {
            let e = SfEndpoint::from_url(bad).unwrap_err();
            assert_eq!(e.kind(), migrate_core::ErrorKind::Config, "{bad}");
        }
    }
}
