"""The README and the user guide link only to files (and guide headings) that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/guide.md", "docs/index.md", "docs/cli.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown page."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            out.add(slug)
    return out


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file, or heading in that file, is missing."""
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text("utf-8")):
            broken.append(target)
    return broken


@pytest.mark.parametrize("name", PAGES)
def test_links_when_page_is_read_all_resolve(name: str) -> None:
    assert broken_links(REPO / name) == []


def test_broken_links_when_target_is_missing_reports_it(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading) [bad](gone.md) "
                    "[bad](there.md#nope) [web](https://example.com)\n", encoding="utf-8")
    assert broken_links(page) == ["gone.md", "there.md#nope"]
