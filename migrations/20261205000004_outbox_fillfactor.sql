-- Room on each outbox page for the versions of its rows: the relay's claim (claimed_until,
-- claimed_by) changes no indexed column, so with free space on the page PostgreSQL writes
-- it as a heap-only tuple, adding no entry to the three indexes; with full pages (the
-- default fillfactor of 100) every claim added one to each, and the claim scan of
-- outbox_unpublished then walked past two dead entries per published row.
ALTER TABLE outbox SET (fillfactor = 50);
