-- Control totals of DSP reports, as `royalty-ingest produce` published them (topic
-- royalty.report.summaries), applied by `run` exactly once in the batch transaction like
-- lines: the newest summary (by the report's creation time) of each report, DSP, period
-- and currency. `royalty-ingest reconcile` compares them with the ledger.
CREATE TABLE report_summaries (
    report_id        text NOT NULL,
    dsp_name         text NOT NULL,
    report_period    date NOT NULL,
    currency         text NOT NULL,
    lines            bigint NOT NULL,
    quantity         bigint NOT NULL,
    amount           numeric(38, 13) NOT NULL,
    declared_amount  numeric(38, 13),
    source           text NOT NULL,
    created_at       timestamptz NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, dsp_name, report_period, currency)
);
-- Reconciliation reads the ledger through its (dsp_name, report_period) index: no index
-- is added to the ledger for it (each one costs every insert).
