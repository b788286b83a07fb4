"""The README is the user's path (short), the internals live in docs/, and every link resolves."""

import re

import pytest

from .helpers import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "experiments/README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_readme_is_short():
    # 260 until the activation line, glue-data, the bf16 fallback, the context gains and experiment
    # 5 came in (2026-12-05)
    assert len(README.read_text().splitlines()) <= 285


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text()
    assert {p.name for p in DOCS} >= {
        "architecture.md",
        "data.md",
        "objective.md",
        "reliability.md",
        "benchmarks.md",
    }
    for page in DOCS:
        assert f"(docs/{page.name}" in text, page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {target}"
