"""URLs as stored: scrubbed of query strings and fragments, but for the landing's campaign
parameters and which ad click id was there (docs/metrics.md, "Campaigns")."""

from __future__ import annotations

from urllib.parse import parse_qsl

from chainlens.core.fields import MAX_PROP_VALUE

CAMPAIGN_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "fbclid", "msclkid")  # ad click ids: which one was there, never its value


def campaign_props(url: str) -> dict[str, str]:
    """A landing URL's campaign: its UTM parameters, and `click_id` naming the ad click id
    present (docs/metrics.md, "Campaigns"). Kept even when the rest of the query is scrubbed."""
    out: dict[str, str] = {}
    query = url.split("#", 1)[0].split("?", 1)[1]
    for key, value in parse_qsl(query, keep_blank_values=True):  # url is ≤ MAX_URL
        if key in CAMPAIGN_PARAMS and value.strip():
            out[key] = value.strip()[:MAX_PROP_VALUE]
        elif key in CLICK_IDS and "click_id" not in out:
            out["click_id"] = key
    return out


def scrub_url(url: str, scrub: bool) -> str:
    """Privacy by default: query strings and fragments can carry e-mails and tokens."""
    if not scrub or not url or ("?" not in url and "#" not in url):  # most URLs: nothing to cut
        return url
    return url.split("?", 1)[0].split("#", 1)[0]
