"""Every relative link in the README and the docs resolves to a file of the repository, and every
#anchor into a Markdown page to one of its headings."""

import re
from pathlib import Path

import pytest

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "cluster" / "README.md",
        ROOT / "infra" / "README.md", ROOT / "srgan" / "assets" / "model" / "MODEL_CARD.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    targets = [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", t)]
    missing = []
    for target in targets:
        path, _, anchor = target.partition("#")
        page = doc.parent / path if path else doc
        if not page.exists() or (anchor and page.suffix == ".md" and anchor not in anchors(page)):
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)}: {missing}"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, page.name
