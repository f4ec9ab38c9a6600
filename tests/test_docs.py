"""The README stays a library's front page, and the documentation's links stay true.

The README is short and links every page under docs/; every relative link or image path in the
README and in docs/*.md names a file or folder of the repository (web links and in-page anchors
are not checked).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

#: ``[text](target)`` and ``![alt](target)``, with an optional title; ``[name]: target`` definitions
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
_HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)


def _prose(text: str) -> str:
    """The text without fenced code blocks, inline code spans and HTML comments (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    # a code span becomes a word, so that [`file.py`](path) stays a link and `[x](y)` is none
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "code", text)


def links(path: Path) -> list[str]:
    """Every link or image target written in the Markdown file ``path``."""
    text = _prose(path.read_text(encoding="utf-8"))
    return [*_INLINE.findall(text), *_DEFINITION.findall(text), *_HTML_SRC.findall(text)]


def local_targets(path: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) for every relative link of ``path``: web links, mail links and
    in-page anchors left out, ``#anchor`` and ``?query`` tails dropped."""
    out = []
    for target in links(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "//")):
            continue
        bare = target.split("#", 1)[0].split("?", 1)[0]
        if bare:
            out.append((target, (path.parent / bare).resolve()))
    return out


def test_link_extraction_reads_links_and_images_but_not_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](x.md#part), ![fig](img/p.png), [web](https://example.org) and [top](#top).\n"
        "[def]: ../d.md\n"
        "`[not](code.md)` and\n```python\nx = [y](z)\n```\n<!-- [hidden](h.md) -->\n"
    )
    assert links(page) == ["x.md#part", "img/p.png", "https://example.org", "#top", "../d.md"]
    assert [t for t, _ in local_targets(page)] == ["x.md#part", "img/p.png", "../d.md"]


def test_readme_is_under_250_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n < 250, f"README.md has {n} lines: move detail into a docs/ page and link it"


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no pages"
    linked = {resolved for _, resolved in local_targets(README)}
    missing = [p.relative_to(ROOT).as_posix() for p in DOCS if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_in_the_repository(page):
    broken = [target for target, resolved in local_targets(page) if not resolved.exists()]
    outside = [target for target, resolved in local_targets(page) if not resolved.is_relative_to(ROOT)]
    assert not broken, f"{page.name}: links to missing files: {broken}"
    assert not outside, f"{page.name}: links outside the repository: {outside}"
