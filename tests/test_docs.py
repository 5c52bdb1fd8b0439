"""The README is the front door: its links resolve, it links every docs page, it names every command,
and every number it quotes from a run says when and at which commit it was measured.

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
#: a number only a run gives: a duration, a rate, a peak memory, a held-out error or accuracy, a rank correlation
RUN_NUMBER = re.compile(r"\d ?(?:min|minutes|h|hours|s)\b|iterations/s|it/s|peak RSS|(?:MAE|accuracy|ρ)[ =]*[−+-]?\d")
#: when and at which commit, or an honest "not re-measured"
DATED = re.compile(r"measured \d{4}-\d{2}-\d{2} at [0-9a-f]{7,40}\b|not re-measured")


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


def undated_run_numbers(text: str) -> list[str]:
    """Table rows and prose paragraphs that quote a run's number without its date and commit."""
    units = []
    for block in re.split(r"\n\s*\n", prose(text)):
        rows = [line for line in block.splitlines() if line.lstrip().startswith("|")]
        units += rows or [" ".join(block.split())]
    return [u.strip() for u in units if RUN_NUMBER.search(u) and not DATED.search(u)]


def test_run_derived_numbers_carry_date_and_commit():
    assert undated_run_numbers(README.read_text()) == []


def test_an_undated_run_number_is_found():
    text = (
        "The demo takes 7 min on 2 cores,\nwrapped over two lines.\n\n"
        "It takes 7 min (measured 2026-12-07 at abc1234).\n\n"
        "| config | time |\n|---|---|\n| demo | 7 min 2 s |\n| test | 40 s, not re-measured |\n\n"
        "Held-out accuracy 0.8, measured 2026-12-07.\n\n"
        "A 6-epoch demo on 4 areas of 384² px; `took 9 min` in code; ρ of each metric.\n"
    )
    assert undated_run_numbers(text) == [
        "The demo takes 7 min on 2 cores, wrapped over two lines.",
        "| demo | 7 min 2 s |",
        "Held-out accuracy 0.8, measured 2026-12-07.",
    ]
