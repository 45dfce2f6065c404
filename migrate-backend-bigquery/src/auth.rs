//! Who the client says it is: nothing for the emulator, an OAuth access token for Google —
//! from a service-account key file, or from application-default credentials
//! (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's `application_default_credentials.json`, the
//! metadata server of a Google Cloud machine, then `gcloud auth print-access-token`).
//!
//! Tokens come from `gcp_auth` (signing the key's JWT, the refresh-token and metadata flows,
//! caching a token until 20 s before it expires). The key and the tokens never leave this
//! module's `TokenSource`: its `Debug` names the source, not what it holds.

use std::path::PathBuf;
use std::sync::Arc;

use migrate_core::{Error, ErrorKind, Result};
use tokio::sync::OnceCell;

/// The OAuth scope every request needs (tables, jobs, uploads).
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BqAuth {
    /// None: the emulator (an `endpoint=` given without `credentials=`).
    None,
    /// A service-account key file (`credentials=PATH`); its `token_uri` is where tokens come
    /// from.
    KeyFile(PathBuf),
    /// Application-default credentials: Google's endpoint with no `credentials=`.
    ApplicationDefault,
}

/// Access tokens for one [`BqAuth`], made on first use and cached by `gcp_auth`.
#[derive(Clone)]
pub(crate) struct TokenSource {
    auth: BqAuth,
    provider: Arc<OnceCell<Arc<dyn gcp_auth::TokenProvider>>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(auth: BqAuth) -> TokenSource {
        TokenSource {
            auth,
            provider: Arc::new(OnceCell::new()),
        }
    }

    /// The bearer token to send, or `None` when requests go unauthenticated. A failure is an
    /// error of kind `Auth` naming where the credentials were looked for (never their content).
    pub(crate) async fn token(&self) -> Result<Option<Arc<gcp_auth::Token>>> {
        if self.auth == BqAuth::None {
            return Ok(None);
        }
        let provider = self
            .provider
            .get_or_try_init(|| async {
                match &self.auth {
                    BqAuth::KeyFile(path) => gcp_auth::CustomServiceAccount::from_file(path)
                        .map(|p| Arc::new(p) as Arc<dyn gcp_auth::TokenProvider>)
                        .map_err(|e| self.failed("reading", e)),
                    _ => gcp_auth::provider()
                        .await
                        .map_err(|e| self.failed("finding", e)),
                }
            })
            .await?;
        let token = provider
            .token(&[SCOPE])
            .await
            .map_err(|e| self.failed("getting an access token from", e))?;
        Ok(Some(token))
    }

    fn failed(&self, doing: &str, e: gcp_auth::Error) -> Error {
        let from = match &self.auth {
            BqAuth::KeyFile(path) => format!("the service-account key {}", path.display()),
            _ => "application-default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application_default_credentials.json, the metadata server, gcloud)".into(),
        };
        Error::with_source(
            ErrorKind::Auth,
            format!("BigQuery: {doing} {from} failed (the token endpoint's answer, if any, is in the log)"),
            e,
        )
    }
}
