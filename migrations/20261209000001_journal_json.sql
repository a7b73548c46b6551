-- The journal keeps each version's values as written, in `json` instead of `jsonb`. Nothing
-- queries inside them on the batch path (they are read by a person or a payout run, whole or
-- by `->>`, which `json` has too), and converting each document to `jsonb`'s binary form
-- was a third of a journal row's cost: a restatement-heavy load writes one such row per
-- restated line (BENCHMARKS.md, "Session 12": 22 → 14 µs per row). `json` also keeps the
-- keys in the order the writer put them. The documents are rewritten once, here.
ALTER TABLE ledger_revisions
    ALTER COLUMN old_values TYPE json USING old_values::json,
    ALTER COLUMN new_values TYPE json USING new_values::json;
