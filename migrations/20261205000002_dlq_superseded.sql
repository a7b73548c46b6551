-- A dead letter made obsolete by a newer version of its line: when the ledger books the
-- line a refused record carried (same line identity, same report) in a version newer than
-- the refused one (a DSP's corrected resend), the letter is closed as superseded in the
-- same batch transaction. line_key and report_id say which line a refused record carried,
-- when it was read far enough to tell (a validation or database refusal of a line; NULL
-- for a record that did not decode). superseded_version is the report time of the version
-- that superseded it; resolved_at, resolved_topic/_partition/_offset and resolved_line_key
-- say when and where that version was read, resolved_note says so in words. Letters
-- refused before this migration have no line_key and are left to `dlq resolve`.
ALTER TABLE quarantine
    ADD COLUMN line_key           bytea,
    ADD COLUMN report_id          text,
    ADD COLUMN superseded_version timestamptz;
CREATE INDEX quarantine_open_line ON quarantine (line_key) WHERE resolved_at IS NULL;
