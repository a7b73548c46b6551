-- Report versions: a newer version of a report replaces the older one. A line the older
-- version had and the newer one no longer has is reversed (restated to zero, journaled
-- with the reason), once every line of the newer version is in the ledger.

-- A summary whose version has not yet replaced the older one's lines (its own lines are
-- not all booked yet). `run` settles it in the batch that books its last line.
ALTER TABLE report_summaries ADD COLUMN replaces_pending boolean NOT NULL DEFAULT false;
CREATE INDEX report_summaries_pending ON report_summaries (report_id) WHERE replaces_pending;

-- Why a revision was made, when it was not a DSP's own restatement of the line.
ALTER TABLE ledger_revisions ADD COLUMN reason text;

-- Lines reversed because a newer version of their report no longer has them. A row is
-- reversed while its source_timestamp is still the version_at recorded here; a later
-- version that reports the line again restates it and so ends the reversal.
CREATE TABLE ledger_reversals (
    line_key     bytea PRIMARY KEY REFERENCES royalty_ledger (line_key),
    report_id    text NOT NULL,
    version_at   timestamptz NOT NULL,
    reversed_at  timestamptz NOT NULL DEFAULT now()
);

-- Lines booked under the identity rules before this migration, which cannot be re-keyed
-- here: a DSR line's key was MessageId/BlockId/SalesTransactionId, and its new natural key
-- (release, resource, commercial model, use type, territory, service, price) needs values
-- the ledger never stored; a delimited line's key was its file hash and line number, and
-- its new one needs the profile's line_key columns. Nothing already booked is changed:
-- these rows stay as they are, listed here (and printed by `royalty-ingest migrate`) so
-- that a re-published report, which books under the new identity, is not a surprise.
-- `reconcile` flags such a pair as a probable double booking.
CREATE TABLE legacy_line_identities (
    dsp_name       text NOT NULL,
    report_period  date NOT NULL,
    report_id      text NOT NULL,
    rule           text NOT NULL,
    lines          bigint NOT NULL,
    amount         numeric(38, 13) NOT NULL,
    why            text NOT NULL,
    PRIMARY KEY (dsp_name, report_period, report_id, rule)
);
INSERT INTO legacy_line_identities
SELECT dsp_name, report_period, report_id, rule, count(*), sum(royalty_amount),
       CASE rule
         WHEN 'dsr-message-id' THEN
           'keyed by MessageId/BlockId/SalesTransactionId; the new DSR line key needs the '
           'commercial model, service and price, which the ledger does not hold'
         ELSE
           'keyed by the file''s hash or report id and a line number; the new key needs the '
           'profile''s line_key columns, which the ledger does not hold'
       END
  FROM (SELECT dsp_name, report_period, report_id, royalty_amount,
               CASE WHEN transaction_id LIKE report_id || '/%/%' THEN 'dsr-message-id'
                    ELSE 'file-line-number' END AS rule
          FROM royalty_ledger
         WHERE report_id IS NOT NULL
           AND (transaction_id LIKE report_id || '/%/%'
                OR transaction_id ~ ('^' || regexp_replace(report_id, '([^A-Za-z0-9])', '\\\1', 'g')
                                     || ':[0-9]+$'))) old
 GROUP BY dsp_name, report_period, report_id, rule;
