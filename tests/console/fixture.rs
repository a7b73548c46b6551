//! The console tests' fixture: dead letters of every kind made by the real pipeline, and
//! signing in.

use std::path::{Path, PathBuf};

use royalty_ingest::avro::{WriterSchema, encode_single_object};
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::sample::record_key;

use crate::common;
use crate::common::console::{ConsoleServer, PASSWORD, sign_in};
use crate::common::pipeline::{distinct_lines, encode, run_args, run_until_idle};

/// The consumer group of the queue fixture's `run`.
pub const GROUP: &str = "it-console";
/// A royalty-line version the built-in schemas lack (v3 plus a field).
pub const NEW_VERSION: u32 = 9;
/// The hostile text one refused line carries.
pub const SCRIPT: &str = "<script>alert('x')</script>";

/// Version 9 of the royalty line: v3 plus an optional track title.
pub fn new_schema_json() -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/royalty_line.v3.avsc")).expect("v3 json");
    schema["doc"] = "Test writer version 9: v3 plus a track title.".into();
    schema["fields"].as_array_mut().expect("fields").push(
        serde_json::json!({"name": "track_title", "type": ["null", "string"], "default": null}),
    );
    schema.to_string()
}

/// A schema directory with the built-in versions plus version 9.
pub fn schemas_with_new(root: &Path) -> PathBuf {
    let dir = root.join("with_new");
    std::fs::create_dir(&dir).expect("mkdir");
    for version in 1..=3 {
        let file = format!("royalty_line.v{version}.avsc");
        std::fs::copy(Path::new("schemas").join(&file), dir.join(&file)).expect("copy schema");
    }
    std::fs::write(
        dir.join(format!("royalty_line.v{NEW_VERSION}.avsc")),
        new_schema_json(),
    )
    .expect("write v9");
    dir
}

/// Dead letters of every kind the console shows, made by the real pipeline.
pub struct Queue {
    pub raw: String,
    pub dlq: String,
    pub url: String,
    pub pool: sqlx::PgPool,
    _root: tempfile::TempDir,
    /// Schemas `run` needs to book the unknown-schema letters once replayed.
    pub with_new: PathBuf,
    /// Three letters refused for a writer schema `run` did not know (replayable).
    pub unknown: Vec<String>,
    /// A line refused for its UPC check digit (decodes).
    pub bad_upc: String,
    /// A line refused for its UPC whose report id and artist are a `<script>`.
    pub hostile: String,
    /// The lines, in the order above.
    pub lines: Vec<DecodedLine>,
}

pub async fn queue_fixture() -> Queue {
    let raw = common::fresh_topic("it.console.raw", 1).await;
    let dlq = common::fresh_topic("it.console.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let root = tempfile::tempdir().expect("tempdir");
    let with_new = schemas_with_new(root.path());
    let mut lines = distinct_lines(21, 1, 5);
    for line in &mut lines[3..] {
        line.upc = Some("731453000000".to_string());
    }
    lines[4].report_id = Some(SCRIPT.to_string());
    lines[4].artist = Some(SCRIPT.to_string());
    let producer = common::producer();
    let v9 = WriterSchema::parse(&new_schema_json()).expect("v9 parses");
    for (n, line) in lines.iter().enumerate() {
        let value = if n < 3 {
            encode_single_object(&v9, line).expect("encode v9")
        } else {
            encode(3, line)
        };
        common::send(&producer, &raw, record_key(line).as_bytes(), &value).await;
    }
    run_until_idle(run_args(&raw, &dlq, &url, GROUP)).await;
    let ids = |class: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT dead_letter_id FROM quarantine WHERE error_class = $1
                  ORDER BY source_offset",
            )
            .bind(class)
            .fetch_all(&pool)
            .await
            .expect("dead-letter ids")
        }
    };
    let unknown = ids("unknown_fingerprint").await;
    let bad = ids("gs1_check_digit").await;
    assert_eq!(
        (unknown.len(), bad.len()),
        (3, 2),
        "the fixture's dead letters"
    );
    Queue {
        raw,
        dlq,
        url,
        pool,
        _root: root,
        with_new,
        unknown,
        bad_upc: bad[0].clone(),
        hostile: bad[1].clone(),
        lines,
    }
}

impl Queue {
    /// The console over the fixture's database, dead-letter topic and group.
    pub async fn console(&self) -> ConsoleServer {
        ConsoleServer::start(&self.url, &["--dlq-topic", &self.dlq, "--group", GROUP]).await
    }

    /// Whether a dead letter is still open in quarantine.
    pub async fn is_open(&self, id: &str) -> bool {
        sqlx::query_scalar("SELECT resolved_at IS NULL FROM quarantine WHERE dead_letter_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("quarantine row")
    }
}

/// Signs in and returns the session cookie.
pub async fn session_of(console: &ConsoleServer, user: &str) -> String {
    let signed = sign_in(console, user, PASSWORD).await;
    assert_eq!(signed.status.as_u16(), 303, "{user} signs in");
    signed.session.expect("a session cookie")
}
