-- How each event came (docs/metrics.md, "Raw events"): `e` from a browser, `s2s` from the shop's
-- back office, `import` from `chainlens import`; '' for rows stored before this column. The live
-- counts leave imports out: imported history is not arriving now.
ALTER TABLE events ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
