//! Every writer schema this deployment knows locally (`schemas/*.avsc`, every version
//! kept), indexed by spec fingerprint for single-object records and by name + version
//! for producers. Each schema is validated once at load; a set where one fingerprint
//! would mean two layouts (the canonical form drops logical types, precision and scale)
//! is refused as a whole, because such records could not be decoded unambiguously.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::decode::WriterSchema;
use super::error::SchemaError;

/// The committed schemas, compiled into the binary so it runs without the directory.
const BUILTIN: [(&str, &str); 9] = [
    (
        "royalty_line.v1.avsc",
        include_str!("../../schemas/royalty_line.v1.avsc"),
    ),
    (
        "royalty_line.v2.avsc",
        include_str!("../../schemas/royalty_line.v2.avsc"),
    ),
    (
        "royalty_line.v3.avsc",
        include_str!("../../schemas/royalty_line.v3.avsc"),
    ),
    (
        "royalty_line.v4.avsc",
        include_str!("../../schemas/royalty_line.v4.avsc"),
    ),
    (
        "drift_alert.v1.avsc",
        include_str!("../../schemas/drift_alert.v1.avsc"),
    ),
    (
        "drift_alert.v2.avsc",
        include_str!("../../schemas/drift_alert.v2.avsc"),
    ),
    (
        "report_summary.v1.avsc",
        include_str!("../../schemas/report_summary.v1.avsc"),
    ),
    (
        "report_summary.v2.avsc",
        include_str!("../../schemas/report_summary.v2.avsc"),
    ),
    (
        "catalog_update.v1.avsc",
        include_str!("../../schemas/catalog_update.v1.avsc"),
    ),
];

/// A loaded, validated set of writer schemas.
#[derive(Debug, Default)]
pub struct SchemaStore {
    by_fingerprint: HashMap<u64, (String, Arc<WriterSchema>)>,
    by_name: HashMap<String, BTreeMap<u32, (String, Arc<WriterSchema>)>>,
}

/// The `N` of a `NAME.vN.avsc` file name.
fn version_of(file: &str) -> Option<u32> {
    let stem = file.strip_suffix(".avsc")?;
    stem.split('.')
        .skip(1)
        .filter_map(|part| part.strip_prefix('v'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .find_map(|digits| digits.parse().ok())
}

impl SchemaStore {
    /// Loads every `NAME.vN.avsc` file of `dir` (an empty directory is refused: a consumer
    /// with no schema would dead-letter every record). Each built-in record the directory
    /// does not define at all (catalog updates, drift alerts) is added from the binary.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<SchemaStore, SchemaError> {
        let dir = dir.as_ref();
        let io_error = |error| SchemaError::Io {
            path: dir.to_path_buf(),
            error,
        };
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if !file.ends_with(".avsc") || !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|error| SchemaError::Io {
                path: path.clone(),
                error,
            })?;
            sources.push((file.to_owned(), text));
        }
        if sources.is_empty() {
            return Err(SchemaError::Io {
                path: dir.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no *.avsc files"),
            });
        }
        sources.sort();
        let mut store = SchemaStore::from_sources(sources)?;
        // A directory made for new royalty-line versions need not copy the records the
        // service itself reads and writes (catalog updates, drift alerts).
        let builtin = SchemaStore::builtin()?;
        for (name, versions) in builtin.by_name {
            if !store.by_name.contains_key(&name) {
                for (file, schema) in versions.into_values() {
                    store.insert(file, schema)?;
                }
            }
        }
        Ok(store)
    }

    /// The schemas committed in `schemas/`, compiled into the binary.
    pub fn builtin() -> Result<SchemaStore, SchemaError> {
        SchemaStore::from_sources(
            BUILTIN
                .iter()
                .map(|(file, text)| ((*file).to_owned(), (*text).to_owned())),
        )
    }

    /// Builds a store from `(file name, schema JSON)` pairs; the file name must carry the
    /// version as `NAME.vN.avsc`.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SchemaStore, SchemaError> {
        let mut store = SchemaStore::default();
        for (file, text) in sources {
            let version = version_of(&file).ok_or_else(|| SchemaError::FileName(file.clone()))?;
            let schema = WriterSchema::parse(&text)
                .map_err(|e| e.in_file(file.clone()))?
                .with_version(version);
            store.insert(file, Arc::new(schema))?;
        }
        Ok(store)
    }

    fn insert(&mut self, file: String, schema: Arc<WriterSchema>) -> Result<(), SchemaError> {
        let fingerprint = schema.fingerprint();
        if let Some((first, known)) = self.by_fingerprint.get(&fingerprint) {
            if known.layout_form() != schema.layout_form() {
                return Err(SchemaError::FingerprintCollision {
                    fingerprint,
                    first: first.clone(),
                    second: file,
                });
            }
        } else {
            self.by_fingerprint
                .insert(fingerprint, (file.clone(), schema.clone()));
        }
        let version = schema.version().unwrap_or_default();
        let versions = self
            .by_name
            .entry(schema.full_name().to_owned())
            .or_default();
        if let Some((first, _)) = versions.get(&version) {
            return Err(SchemaError::DuplicateVersion {
                full_name: schema.full_name().to_owned(),
                version,
                first: first.clone(),
                second: file,
            });
        }
        versions.insert(version, (file, schema));
        Ok(())
    }

    /// The writer schema with this single-object fingerprint.
    pub fn get(&self, fingerprint: u64) -> Option<Arc<WriterSchema>> {
        self.by_fingerprint
            .get(&fingerprint)
            .map(|(_, s)| s.clone())
    }

    /// A given version of a record (`full_name` like `io.royaltyingest.RoyaltyLine`).
    pub fn by_name_version(&self, full_name: &str, version: u32) -> Option<Arc<WriterSchema>> {
        self.by_name
            .get(full_name)?
            .get(&version)
            .map(|(_, s)| s.clone())
    }

    /// The highest version of a record: what producers should write.
    pub fn latest(&self, full_name: &str) -> Option<Arc<WriterSchema>> {
        self.by_name
            .get(full_name)?
            .last_key_value()
            .map(|(_, (_, s))| s.clone())
    }

    /// Every schema, by full name then version, with the file it came from.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<WriterSchema>)> {
        let mut records: Vec<_> = self.by_name.iter().collect();
        records.sort_by_key(|(name, _)| *name);
        records.into_iter().flat_map(|(_, versions)| {
            versions
                .values()
                .map(|(file, schema)| (file.as_str(), schema))
        })
    }

    /// Number of schema files loaded.
    pub fn len(&self) -> usize {
        self.by_name.values().map(BTreeMap::len).sum()
    }

    /// True when no schema is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
