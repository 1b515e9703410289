"""A site's own segment conditions, read before the store sees them (docs/metrics.md, "Behavior
segments"): an expression over chain_sessions' columns, never a query."""

from __future__ import annotations

import re

# chain_sessions' columns a segment's `where` may use (docs/metrics.md, "Sessions"); a test
# checks this list against the table itself.
SESSION_COLUMNS = frozenset({
    "site_id", "day", "session_id", "anon_id", "started_at", "ended_at", "device", "visitor", "steps",
    "entered", "furthest", "furthest_index", "purchased", "abandoned_at", "obstacle_steps", "obstacle_kinds",
    "detail_views", "fast_track_views", "events", "transitions", "ms_before_abandon", "revenue", "currency",
    "source", "medium", "campaign", "term", "content", "click_id", "referrer_host", "landing_path", "pages",
    "product_views", "searches", "cart_value", "first_interaction_ms", "clicks_to_goal", "earlier_cart",
})
_SQL_WORDS = frozenset({
    "and", "or", "not", "in", "is", "null", "like", "ilike", "between", "true", "false", "case", "when",
    "then", "else", "end", "interval", "second", "minute", "hour", "day", "week", "month", "year",
})
_TOKEN = re.compile(r"""\s+|'(?:[^'\\]|\\.)*'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_.]*"""
                    r"""|<=|>=|!=|<>|==|[-+*/%<>=(),\[\]]""", re.I)


def check_segment_where(where: str) -> str:
    """"" when `where` reads as an expression over chain_sessions' columns, else the problem.
    The store checks types when a rollup starts (ingestion/rollup.py, check_segments)."""
    pos, depth, prev = 0, 0, ""
    while pos < len(where):
        match = _TOKEN.match(where, pos)
        if not match:
            return f"cannot read {where[pos:pos + 20]!r}"
        token, pos = match.group(), match.end()
        if token.isspace():
            continue
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth < 0:
            return "unbalanced parentheses"
        if token[0].isalpha() or token[0] == "_":
            lower = token.lower()
            if lower in ("select", "from", "settings", "format"):
                return f"{token!r}: a condition, not a query"
            follows = where[pos:].lstrip()[:1]
            if follows != "(" and lower not in _SQL_WORDS and token not in SESSION_COLUMNS:
                return f"unknown column {token!r} (chain_sessions has {', '.join(sorted(SESSION_COLUMNS))})"
        prev = token
    if depth:
        return "unbalanced parentheses"
    return "" if prev else "empty"
