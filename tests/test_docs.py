"""The README is the front door: its links resolve, it links every docs page, it names every command.

The house rule "every command has --help and a line in the README" is checked against the
parser itself, so a new subcommand without a README line fails here.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from deepsnow.cli import build_parser
from helpers import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))

#: [text](target) and ![alt](target); the target ends at the first space or closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(page: Path) -> list[str]:
    """Link targets of a Markdown page that point into the repository (no URL, no bare anchor)."""
    targets = LINK.findall(prose(page.read_text()))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file (anchor dropped) does not exist."""
    return [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (none for a command without subparsers)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    if page == README:
        assert relative_links(page), "the README links nothing"
    assert broken_links(page) == [], f"{page.name}: links to files that do not exist"


def test_broken_link_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("# here\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/here.md#here) [gone](docs/gone.md) ![img](docs/none.png)\n"
        "[web](https://x.org/a.md) [anchor](#here)\n"
        "`[code](docs/code.md)`\n```\n[fenced](docs/fenced.md)\n```\n"
    )
    assert broken_links(page) == ["docs/gone.md", "docs/none.png"]


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.split("#")[0]).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in DOCS if p.resolve() not in linked]
    assert DOCS, "no docs/*.md pages found"
    assert unlinked == [], f"docs pages the README does not link: {unlinked}"


def test_every_command_has_a_readme_line():
    text = README.read_text()
    missing = []
    for name, parser in subcommands(build_parser()).items():
        mention = rf"`deepsnow {re.escape(name)}[` ]"
        lines = [line for line in text.splitlines() if re.search(mention, line)]
        if not lines:
            missing.append(name)
        for sub in subcommands(parser):
            pattern = rf"`{re.escape(sub)}`|deepsnow {re.escape(name)} {re.escape(sub)}\b"
            if not any(re.search(pattern, line) for line in lines):
                missing.append(f"{name} {sub}")
    assert missing == [], f"deepsnow commands without a line in README.md: {missing}"
