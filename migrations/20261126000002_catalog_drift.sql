-- The master catalog, versioned: per ISRC the UPC(s), title, display artist, label and ISWC,
-- each version effective over [valid_from, valid_to) in business time; loaded_at is when we
-- learned it. An update closes the current version and opens a new one; the past is never
-- edited, so a ledger row can always say which version it was checked against.
CREATE TABLE catalog_versions (
    version_id      bigserial PRIMARY KEY,
    isrc            text NOT NULL CHECK (isrc ~ '^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$'),
    upcs            text[] NOT NULL CHECK (cardinality(upcs) > 0),
    title           text,
    display_artist  text,
    label           text,
    iswc            text,
    valid_from      date NOT NULL,
    -- NULL: still current. Equal to valid_from: superseded the same business day (kept for
    -- the audit trail, never effective).
    valid_to        date CHECK (valid_to IS NULL OR valid_to >= valid_from),
    source          text NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX catalog_versions_current ON catalog_versions (isrc) WHERE valid_to IS NULL;
CREATE INDEX catalog_versions_isrc_from ON catalog_versions (isrc, valid_from);

-- Which catalog version a line was checked against when it was posted (NULL: no catalog
-- entry). Corrections to the catalog apply prospectively; this is never re-attributed.
ALTER TABLE royalty_ledger ADD COLUMN catalog_version_id bigint REFERENCES catalog_versions (version_id);

-- One row per distinct drift and DSP: the drift (ISRC, kind, expected, received, catalog
-- version) is identified by drift_id; the alert is sent once per drift_id, and the lines
-- showing it are counted here per DSP instead of alerting per line.
CREATE TABLE drift_events (
    drift_id            text NOT NULL,
    dsp_name            text NOT NULL,
    isrc                text NOT NULL,
    kind                text NOT NULL,
    expected            text,
    received            text,
    catalog_version_id  bigint REFERENCES catalog_versions (version_id),
    occurrences         bigint NOT NULL CHECK (occurrences > 0),
    first_report_id     text,
    first_source        text,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (drift_id, dsp_name)
);
CREATE INDEX drift_events_isrc ON drift_events (isrc);
