"""Docs that tests keep true: examples load, citations resolve, settings and commands are documented."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from chainlens.core.loading import from_mapping
from chainlens.core.settings import ConfigError, Settings, Site
from ingestion import figures, tables

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [p for d in ("chainlens", "collector", "ingestion", "sdk_js", "bench", "tests")
           for p in sorted((ROOT / d).rglob("*")) if p.suffix in (".py", ".sql", ".js", ".html", ".j2")]
# A TOML block whose first line is this comment is part of a file, shown alone: it only has to parse.
FRAGMENT = "# fragment"
CITATION = re.compile(r"(docs/[a-z_]+\.md),?\s+\"([^\"]+)\"")
# A citation wrapped over comment lines: the leaders of the next line are not part of it.
LEADER = re.compile(r"\s*\n\s*(?:#|--|//|\*)?\s*")


def toml_blocks() -> list[tuple[str, str]]:
    return [(f"{doc.name}:{i + 1}", block) for doc in DOCS
            for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S))]


@pytest.mark.parametrize(("where", "block"), toml_blocks(), ids=[w for w, _ in toml_blocks()])
def test_every_toml_example_loads(where: str, block: str) -> None:
    parsed = tomllib.loads(block)
    if block.startswith(FRAGMENT):
        return
    try:
        from_mapping(parsed, source=where)
    except ConfigError as exc:
        pytest.fail(f"{where} does not load as a configuration: {exc} (or mark it '{FRAGMENT}')")


def headings(doc: str) -> set[str]:
    text = (ROOT / doc).read_text() if (ROOT / doc).exists() else ""
    return {m.strip() for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_cited_section_exists() -> None:
    missing = []
    for path in [*DOCS, *SOURCES]:
        for doc, section in CITATION.findall(path.read_text()):
            section = LEADER.sub(" ", section)
            if section not in headings(doc):
                missing.append(f"{path.relative_to(ROOT)}: {doc}, \"{section}\"")
    assert not missing, "citations of sections that do not exist:\n" + "\n".join(sorted(set(missing)))


def section_text(doc: str, section: str) -> str:
    text = (ROOT / doc).read_text()
    start = re.search(rf"^(#+) {re.escape(section)}$", text, re.M)
    assert start, f"{doc}: no section {section!r}"
    end = re.compile(rf"^#{{1,{len(start.group(1))}}} ", re.M).search(text, start.end())
    return text[start.end():end.start() if end else len(text)]


def test_every_table_names_a_section_that_exists_and_lists_its_rows_there() -> None:
    for table in tables.TABLES:
        doc, section = CITATION.fullmatch(table.section).groups()  # type: ignore[union-attr]
        assert section in headings(doc), table.name
        if table.rows:  # exactly the groups it stores (tests/test_queries.py checks them against the data)
            assert tables.rows_text(table) in " ".join(section_text(doc, section).split()), table.name


def setting_keys(cls: type, prefix: str) -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys += setting_keys(hint, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        elif f.name not in ("source", "segments"):  # [[sites.segments]]: name and where, documented apart
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_setting_is_documented() -> None:
    text = "\n".join(doc.read_text() for doc in DOCS)
    keys = setting_keys(Settings, "") + setting_keys(Site, "sites.") + ["sites.segments.name", "sites.segments.where"]
    def documented(key: str) -> bool:  # in backticks, or set in a TOML example
        name = re.escape(key.rsplit(".", 1)[-1])
        return bool(re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`|^{name} =", text, re.M))

    undocumented = [k for k in keys if k != "sites" and not documented(k)]
    assert not undocumented, f"settings no doc mentions: {undocumented}"


def test_the_readme_lists_every_command_as_help_does() -> None:
    out = subprocess.run([sys.executable, "-m", "chainlens.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    helped = dict(re.findall(r"^    (\w+) +(.+(?:\n {20,}.+)*)", out, re.M))
    helped = {name: " ".join(text.split()) for name, text in helped.items()}
    readme = (ROOT / "README.md").read_text()
    listed = dict(re.findall(r"^\| `chainlens (\w+)[^`]*` \| (.+?) \|$", readme, re.M))
    assert set(listed) == set(helped), "README's command table and `chainlens --help` name different commands"
    for name, text in helped.items():
        assert listed[name] == text, f"chainlens {name}: README says {listed[name]!r}, --help says {text!r}"


def test_the_cookbook_shows_each_figure_as_its_file_has_it() -> None:
    text = (ROOT / "docs" / "queries.md").read_text()
    assert figures.GENERATED in text
    assert text[text.index(figures.GENERATED):] == figures.markdown(), "run `make docs`"


def test_every_refusal_code_is_documented_and_has_a_fix() -> None:
    from chainlens.core.refusals import CODES
    from ingestion.live import FIXES

    text = (ROOT / "docs" / "snippet.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \| ", text[text.index("## Refusals"):], re.M))
    assert documented == set(CODES)
    assert set(FIXES) == set(CODES), "each refusal code has its fix in words"
