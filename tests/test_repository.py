"""The repository speaks of the product only: no text tells the story of how it was made.

Code, comments, docstrings, tests, docs and results files state facts (what the code does, what
was measured on which machine, by which command, on which date). Text about the work that produced
them (numbered work periods, tracker numbers, who ran what on whose hardware) goes stale
the day it is written and means nothing to a user, so every tracked or new text file is scanned
for it here, and each finding is named as file:line.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The words are split over several names so that this file's own source matches none of the patterns.
LOANED = r"(?:lent|loaned|borrowed)"
HARDWARE = r"(?:machines?|gpus?|devices?|boxe?s?|nodes?|h100s?|a100s?)"
PERIOD = r"(?:sessions?|work\s+periods?)"
PROVENANCE = {
    "a numbered work period": rf"\b{PERIOD}\s+\d",
    "the current work period": rf"\b(?:this|that|earlier|previous|later|last|next|an\s+earlier)\s+{PERIOD}\b",
    "a tracker number": r"\bissues?\s*#?\d+",
    "a helper's run": r"\bhelpers?'?\s+(?:runs?|ran|loaded|measured)\b",
    "hardware on loan": rf"\b{LOANED}\b[^\n]{{0,40}}\b{HARDWARE}\b|\b{HARDWARE}\b[^\n]{{0,40}}\b{LOANED}\b",
    "a lease on a machine": r"\b(?:within|during|of|in)\s+the\s+lease\b",
    "a checkout's name": r"\bworktrees?\b",
}
PATTERN = re.compile("|".join(f"(?P<p{i}>{p})" for i, p in enumerate(PROVENANCE.values())), re.IGNORECASE)
NAMES = list(PROVENANCE)


def repository_text_files() -> list[Path]:
    """Every file git tracks or would track (untracked, not ignored), except binary ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [ROOT / name for name in listed.split("\0") if name]
    return [path for path in files if path.is_file() and text_of(path) is not None]


def text_of(path: Path) -> str | None:
    """The file as UTF-8 text; None for a binary file (a NUL byte, or bytes that are not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def findings(text: str) -> list[tuple[int, str, str]]:
    """(line number, kind, matched text) of every provenance phrase in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in PATTERN.finditer(line):
            kind = NAMES[int(next(name for name, value in match.groupdict().items() if value)[1:])]
            found.append((number, kind, match.group(0)))
    return found


def test_no_file_tells_how_it_was_made():
    problems = [
        f"{path.relative_to(ROOT)}:{number}: {kind}: {matched!r}"
        for path in repository_text_files()
        for number, kind, matched in findings(text_of(path) or "")
    ]
    assert not problems, "the repository speaks of the product only:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "measured in session_4 on the idle machine",
        "re-measured in Session_3",
        "refused on this_session's CPU",
        "as an earlier_session found",
        "1.47x on AVX-512 in issue_15",
        "(issue_#11, item 6)",
        "The helpers'_runs met a load average of 1-13",
        "an H100 lent_to this_project for 30 minutes",
        "no GPU was_loaned for it",
        "not profiled within the_lease",
        "the docs_worktree",
    ],
)
def test_provenance_is_found(line):
    """Each example has an underscore where a space belongs, so that this file does not flag itself."""
    line = line.replace("_", " ")
    assert findings(line), line


@pytest.mark.parametrize(
    "line",
    [
        "session = ort.InferenceSession(path, sess_options=session_options())",
        "@pytest.fixture(scope='session')",
        "Shared fixtures, built once per test session",
        "requests.Session() keeps the HTTP session alive",
        "kill every process of the session that start_new_session gave it",
        "an equivalent result, silently dropped",
        "the issue is that the decoder saturates",
        "the GPU sends 16 frames; lentils",
        "helpers in runtime.progress run on the main thread",
    ],
)
def test_legitimate_words_are_not_flagged(line):
    assert not findings(line), findings(line)
