-- Events that must reach each endpoint one at a time, in publish order, share an
-- ordering key (a connection's backfill chunks of one resource). Events published
-- before this column existed keep their order under the key they were sent with:
-- the user and the event type.
ALTER TABLE events ADD COLUMN ordering_key TEXT;
UPDATE events SET ordering_key = user_id || '/' || event_type
WHERE event_type LIKE 'historical.data.%' AND user_id IS NOT NULL;
