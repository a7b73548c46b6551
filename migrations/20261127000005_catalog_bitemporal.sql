-- Catalog versions become bitemporal. valid_from/valid_to is business time (when a version
-- is in effect); loaded_at says when it was learned, and now closed_at / superseded_by say
-- when a version was closed and by which version. Every change of a valid_to is kept in
-- catalog_version_closures, so "what was in effect for period P as it was known at time T"
-- can be answered exactly (`royalty-ingest catalog as-of`), even after backdated updates.
ALTER TABLE catalog_versions
    ADD COLUMN closed_at     timestamptz,
    ADD COLUMN superseded_by bigint REFERENCES catalog_versions (version_id);

CREATE TABLE catalog_version_closures (
    closure_id     bigserial PRIMARY KEY,
    version_id     bigint NOT NULL REFERENCES catalog_versions (version_id),
    -- valid_to before and after the closure (before: NULL when it was still open).
    old_valid_to   date,
    new_valid_to   date NOT NULL,
    superseded_by  bigint NOT NULL REFERENCES catalog_versions (version_id),
    closed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalog_version_closures_version ON catalog_version_closures (version_id, closed_at);
