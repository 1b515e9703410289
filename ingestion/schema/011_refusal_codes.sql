-- Refusals carry a stable code (docs/snippet.md, "Refusals"), the field they are about and a
-- detail (the refused origin, the unknown site id): the live panel's fixes key on the code.
ALTER TABLE events_rejected ADD COLUMN IF NOT EXISTS code LowCardinality(String) DEFAULT '';
ALTER TABLE events_rejected ADD COLUMN IF NOT EXISTS field String DEFAULT '';
ALTER TABLE events_rejected ADD COLUMN IF NOT EXISTS detail String DEFAULT '';
