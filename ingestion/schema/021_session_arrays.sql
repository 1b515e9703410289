-- chain_sessions keeps its step arrays as plain strings: an array of LowCardinality strings
-- costs a dictionary per row block to write, and writing them was a fifth of the session pass
-- (BENCHMARKS.md, "Speed, round 3"). Columns and values are unchanged.
ALTER TABLE chain_sessions
    MODIFY COLUMN steps Array(String),
    MODIFY COLUMN obstacle_steps Array(String),
    MODIFY COLUMN obstacle_kinds Array(String),
    MODIFY COLUMN transitions Array(Tuple(step String, next_step String, ms Float64));
