-- A delivery carries its event's ordering key, so that claiming can hold it back while
-- an earlier delivery of the same key to the same endpoint is still open: the order then
-- holds across processes and crashes, not only inside one worker. Deliveries without a
-- key (almost all) stay out of the index and never consult it.
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
UPDATE deliveries SET ordering_key = (SELECT e.ordering_key FROM events e WHERE e.id = deliveries.event_id)
WHERE event_id IN (SELECT id FROM events WHERE ordering_key IS NOT NULL);
-- The open deliveries of a key to an endpoint, oldest (lowest id) first: what a claim
-- looks up to find whether an earlier one is still open.
CREATE INDEX deliveries_ordered ON deliveries (endpoint_id, ordering_key, id)
WHERE ordering_key IS NOT NULL AND status IN ('pending', 'retrying');
