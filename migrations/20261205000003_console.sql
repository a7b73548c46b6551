-- The operator console (`royalty-ingest console`): its users, their sessions, the record of
-- every action taken through it, and drift alerts acknowledged there.

-- Which DSP and report period a refused line was for (NULL when the record did not decode
-- far enough to tell, or was refused before this column): the work queue filters and
-- counts by them without decoding payloads.
ALTER TABLE quarantine
    ADD COLUMN dsp_name      text,
    ADD COLUMN report_period date;
-- The work queue pages by quarantine_id (keyset); these keep its filters on an index.
CREATE INDEX quarantine_class_id ON quarantine (error_class, quarantine_id);
CREATE INDEX quarantine_dsp_id ON quarantine (dsp_name, quarantine_id) WHERE dsp_name IS NOT NULL;

-- Console users: viewers read, operators also replay, resolve and acknowledge. The
-- password is an argon2id PHC string; no clear text is ever stored.
CREATE TABLE console_users (
    user_name     text PRIMARY KEY CHECK (user_name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- A signed-in browser. The cookie carries a random token; only its SHA-256 is kept, so a
-- read of this table signs nobody in. csrf_token is echoed in every form of the session.
CREATE TABLE console_sessions (
    token_sha256  bytea PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    user_name     text NOT NULL REFERENCES console_users (user_name),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Every action taken through the console: who, when, what (on which objects), the note.
CREATE TABLE console_audit (
    audit_id    bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_name   text NOT NULL,
    action      text NOT NULL,
    subjects    text[] NOT NULL DEFAULT '{}',
    note        text,
    outcome     text NOT NULL
);
CREATE INDEX console_audit_at ON console_audit (at);

-- A drift (all DSPs that reported it) acknowledged by a person, with why.
CREATE TABLE drift_acknowledgements (
    drift_id         text PRIMARY KEY,
    acknowledged_at  timestamptz NOT NULL DEFAULT now(),
    acknowledged_by  text NOT NULL,
    note             text NOT NULL CHECK (btrim(note) <> '')
);
