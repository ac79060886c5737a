"""The docs state each contract once, and what they state is what the code holds."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from runtime.contract import Profile, Sidecar

DOCS = Path(__file__).resolve().parents[1] / "docs"


def section(page: str, heading: str) -> str:
    """The text of one `#`-heading of a docs page, up to the next heading of any level."""
    text = (DOCS / page).read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{page} has no section {heading!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `text`, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_plan_sidecar_table_names_exactly_the_sidecar_fields():
    rows = table_rows(section("architecture.md", "Plan sidecar"))
    documented = [row[0].strip("`") for row in rows]
    assert documented == [field.name for field in dataclasses.fields(Sidecar)]


def test_the_sidecar_profile_row_names_every_profile_field():
    profile_row = next(row for row in table_rows(section("architecture.md", "Plan sidecar")) if row[0] == "`profile`")
    assert all(f"`{field.name}`" in profile_row[2] for field in dataclasses.fields(Profile))


def test_the_sidecar_schema_is_written_once():
    """Other pages link to the architecture page's table instead of listing the fields again."""
    pattern = re.compile(r"`tensorrt_version`.*`gpu_name`.*`compute_capability`", re.DOTALL)
    pages = [path.name for path in DOCS.glob("*.md") if pattern.search(path.read_text())]
    readme = (DOCS.parent / "README.md").read_text()
    assert pages == ["architecture.md"] and not pattern.search(readme)


POINTER = re.compile(r"(?<![\w/.-])docs/([a-z0-9-]+\.md)(?:,\s*|\s*\()?(?:\"([^\"]+)\")?")


def headings(page: Path) -> set[str]:
    """A page's headings as plain text (no `#`, no backticks, spaces collapsed)."""
    found = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {" ".join(heading.replace("`", "").split()) for heading in found}


def python_files() -> list[Path]:
    root = DOCS.parent
    return [
        path for pattern in ("*.py", "*/*.py", "*/*/*.py") for path in root.glob(pattern) if ".venv" not in path.parts
    ]


def test_pointers_from_the_code_name_pages_and_sections_that_exist():
    problems = []
    for path in python_files():
        for match in POINTER.finditer(path.read_text()):
            page, heading = DOCS / match.group(1), match.group(2)
            if not page.is_file():
                problems.append(f"{path.name}: no page docs/{match.group(1)}")
            elif heading and " ".join(heading.split()) not in headings(page):
                problems.append(f"{path.name}: docs/{match.group(1)} has no section {heading!r}")
    assert not problems, "\n".join(problems)
