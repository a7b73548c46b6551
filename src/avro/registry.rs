//! Client for a Confluent-compatible schema registry, used for records in the Confluent
//! wire format. `GET {base}/schemas/ids/{id}` returns `{"schema": "<schema JSON>"}`;
//! ids are immutable, so every answer — a schema, or a schema this consumer refuses — is
//! cached for the life of the process. Only a 404 carrying error code 40403 means the
//! schema does not exist (a permanent error for that record); anything else that goes
//! wrong (network, timeout, 5xx, 401/403, a 404 from a proxy, an unreadable answer) is
//! `registry_unavailable`, retryable: a record is never dead-lettered because the
//! registry was briefly down or misconfigured.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use super::decode::WriterSchema;
use super::error::{DecodeError, DecodeErrorKind, SchemaRef};

/// Confluent's error code for "schema not found".
const SCHEMA_NOT_FOUND: i64 = 40403;
/// Largest registry answer read (schemas are a few KiB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Whole-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a registry client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    /// The base URL does not parse.
    #[error("invalid schema registry URL: {0}")]
    Url(url::ParseError),
    /// Only http and https are spoken.
    #[error("schema registry URL must be http:// or https://, got {0}://")]
    Scheme(String),
    /// The HTTP client could not be built (e.g. TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

// Written out instead of `#[from]`: the inner error is in the message, and a `#[source]`
// would make an `{:#}` chain say it twice.
impl From<url::ParseError> for RegistryConfigError {
    fn from(err: url::ParseError) -> Self {
        RegistryConfigError::Url(err)
    }
}

impl From<reqwest::Error> for RegistryConfigError {
    fn from(err: reqwest::Error) -> Self {
        RegistryConfigError::Client(err)
    }
}

/// What the registry said about one id, kept forever.
#[derive(Debug, Clone)]
enum Cached {
    Schema(Arc<WriterSchema>),
    Refused(String),
}

/// The registry's answer body for `GET /schemas/ids/{id}`.
#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// The registry's error body.
#[derive(Deserialize)]
struct ErrorResponse {
    error_code: i64,
}

/// A caching schema-registry client; cheap to share behind the decoder.
#[derive(Debug)]
pub struct RegistryClient {
    /// Base URL without credentials or trailing slash.
    base: String,
    /// Basic-auth credentials taken from the URL (`https://key:secret@host`).
    auth: Option<(String, Option<String>)>,
    http: reqwest::Client,
    cache: RwLock<HashMap<u32, Cached>>,
}

impl RegistryClient {
    /// A client for the registry at `base_url` (http or https; credentials in the URL are
    /// sent as basic auth).
    pub fn new(base_url: &str) -> Result<RegistryClient, RegistryConfigError> {
        let mut url = url::Url::parse(base_url)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryConfigError::Scheme(url.scheme().to_owned()));
        }
        let auth = (!url.username().is_empty())
            .then(|| (url.username().to_owned(), url.password().map(str::to_owned)));
        // Only fails for URLs that cannot carry credentials, which http(s) URLs can.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(RegistryClient {
            base: url.as_str().trim_end_matches('/').to_owned(),
            auth,
            http,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The base URL (without credentials).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The writer schema with registry id `id`, validated as the store's schemas are.
    pub async fn get(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        if let Some(cached) = self.cached(id) {
            return answer(id, cached);
        }
        let cached = self.fetch(id).await?;
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, cached.clone());
        answer(id, cached)
    }

    fn cached(&self, id: u32) -> Option<Cached> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }

    /// Asks the registry; `Ok` for any definitive answer about the schema itself.
    async fn fetch(&self, id: u32) -> Result<Cached, DecodeError> {
        let unavailable = |reason: String| {
            DecodeError::from(DecodeErrorKind::RegistryUnavailable { id, reason })
                .with_schema(SchemaRef::RegistryId(id))
        };
        let url = format!("{}/schemas/ids/{id}", self.base);
        let mut request = self.http.get(&url).header(
            reqwest::header::ACCEPT,
            "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, \
             application/json",
        );
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| unavailable(format!("GET {url}: {e}")))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(format!("reading the answer to GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(unavailable(format!(
                    "answer to GET {url} exceeds {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(e) if e.error_code == SCHEMA_NOT_FOUND => {
                    Err(DecodeError::from(DecodeErrorKind::UnknownSchemaId(id))
                        .with_schema(SchemaRef::RegistryId(id)))
                }
                _ => Err(unavailable(format!(
                    "GET {url} answered 404 without error code {SCHEMA_NOT_FOUND} \
                     (is the registry URL right?)"
                ))),
            };
        }
        if !status.is_success() {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(unavailable(format!(
                "GET {url} answered {status}: {snippet}"
            )));
        }
        let answer: SchemaResponse = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("unreadable answer to GET {url}: {e}")))?;
        if let Some(kind) = answer.schema_type.as_deref().filter(|t| *t != "AVRO") {
            return Ok(Cached::Refused(format!("a {kind} schema, not Avro")));
        }
        if !answer.references.is_empty() {
            return Ok(Cached::Refused(
                "schema references are not supported; register a self-contained schema".into(),
            ));
        }
        Ok(match WriterSchema::parse(&answer.schema) {
            Ok(schema) => Cached::Schema(Arc::new(schema)),
            Err(e) => Cached::Refused(e.to_string()),
        })
    }
}

fn answer(id: u32, cached: Cached) -> Result<Arc<WriterSchema>, DecodeError> {
    match cached {
        Cached::Schema(schema) => Ok(schema),
        Cached::Refused(reason) => Err(DecodeError::from(DecodeErrorKind::InvalidWriterSchema(
            format!("registry schema id {id}: {reason}"),
        ))
        .with_schema(SchemaRef::RegistryId(id))),
    }
}
