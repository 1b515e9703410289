"""Enrichment from the request: device class, browser, OS and a bot flag.

User agents are parsed by ua-parser (the maintained uap-core rules) and bots
recognised by crawlerdetect's maintained crawler list; both are cached per UA
string, since a shop's traffic repeats a few hundred strings. The client
address is never stored: it only feeds the rate limiter.
"""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect
from ua_parser import parse

from chainlens.core.fields import Client

_crawlers = CrawlerDetect()
_TABLETS = ("iPad", "Tablet", "Kindle", "Nexus 7", "Nexus 9", "SM-T", "Tab")


@lru_cache(maxsize=4096)
def client_from_ua(ua: str) -> Client:
    if not ua:
        return Client(device="desktop", is_bot=True)  # browsers always send a UA
    result = parse(ua)
    device = result.device.family if result.device else "Other"
    os_family = result.os.family if result.os else ""
    browser = result.user_agent.family if result.user_agent else ""
    is_bot = device == "Spider" or _crawlers.isCrawler(ua)
    return Client(device=_device_class(ua, device, os_family), browser=browser, os=os_family, is_bot=is_bot)


def _device_class(ua: str, device: str, os_family: str) -> str:
    if any(t in device for t in _TABLETS) or (os_family == "Android" and "Mobile" not in ua):
        return "tablet"
    if os_family in ("iOS", "Android", "Windows Phone", "KaiOS") or "Mobile" in ua:
        return "mobile"
    return "desktop"
