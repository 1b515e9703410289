-- Who runs the rollup pass: one row per lease name, the latest `taken` wins
-- (docs/architecture.md, "Several collector nodes"). A holder whose `expires` has
-- passed holds nothing; a finished pass writes its row again with `expires` = now.
CREATE TABLE IF NOT EXISTS rollup_lease (
    name LowCardinality(String),
    holder String,
    taken DateTime64(3, 'UTC'),
    expires DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(taken) ORDER BY name;
