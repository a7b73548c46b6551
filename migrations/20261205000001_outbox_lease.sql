-- The relay claims outbox rows with a lease instead of a transaction held open while it
-- sends: a short statement stamps claimed_until (and who claimed, for the operator), the
-- send happens outside any transaction, and a second short statement stamps published_at
-- (or the error) and clears the claim. A row whose lease has run out (its relay crashed or
-- hung) is claimed again by any relay; nothing is lost, a repeat publication is possible
-- (subscribers drop it by its stable id header).
ALTER TABLE outbox
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN claimed_by    text;
