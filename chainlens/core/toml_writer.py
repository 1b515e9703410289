"""Settings written back as TOML, e.g. for the demo's generated configuration and the tests'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dump_toml(config: Mapping[str, Any]) -> str:
    """Write a settings mapping (as `from_mapping` takes it) as TOML, e.g. for a generated demo config."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def key(k: str) -> str:  # step names such as checkout.info need quoting
        return k if k.replace("_", "").replace("-", "").isalnum() else value(k)

    def tables(v: Any) -> bool:
        return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, Mapping) for x in v)

    def table(name: str, body: Mapping[str, Any], array: bool = False) -> None:
        lines.append(f"[[{name}]]" if array else f"[{name}]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in body.items() if not isinstance(v, Mapping) and not tables(v))
        for k, v in body.items():
            if isinstance(v, Mapping):
                table(f"{name}.{k}", v)
            elif tables(v):
                for item in v:
                    table(f"{name}.{k}", item, array=True)

    for section, body in config.items():
        if section == "sites":
            for site in body:
                table("sites", site, array=True)
        else:
            table(section, body)
    return "\n".join(lines) + "\n"
