-- ISRCs unknown to the catalog are announced by one alert per DSP, report and period per
-- batch (their number and a sample, drift_alert.v2) instead of one alert per track; every
-- track keeps its own row here. alert_id names the alert that announced a row's drift
-- (NULL: announced earlier or at another DSP, or recorded before this column), first_period
-- is the report period of the row's first line: `royalty-ingest alerts unknown-tracks`
-- lists an alert's or a report's tracks from them.
ALTER TABLE drift_events
    ADD COLUMN first_period date,
    ADD COLUMN alert_id     text;
CREATE INDEX drift_events_alert ON drift_events (alert_id) WHERE alert_id IS NOT NULL;
