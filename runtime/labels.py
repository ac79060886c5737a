"""Class-name lists: the packaged ones (`runtime/labels/NAME.txt`) and user label files, one name a line.

A label list is only useful in the order of the model outputs, so reading one never sorts or
reorders it: line i names logit i. The packaged `kinetics400` list is in the order of the official
STAM checkpoints (see `runtime/labels/kinetics400.txt` and docs/design-decisions.md,
"Kinetics-400 label order").
"""

from __future__ import annotations

from pathlib import Path

from runtime.errors import ArtifactError

PACKAGED_DIR = Path(__file__).with_name("labels")
DEFAULT_LABELS = "kinetics400"


def packaged_names() -> list[str]:
    """The names `load_labels` accepts besides file paths (the `.txt` files shipped with the package)."""
    return sorted(path.stem for path in PACKAGED_DIR.glob("*.txt"))


def load_labels(name_or_path: str = DEFAULT_LABELS) -> list[str]:
    """Load a packaged list by name (e.g. "kinetics400") or a text file by path.

    A bare name that matches a packaged list wins over a file of the same name in the working
    directory, so `--labels kinetics400` means the same thing wherever it runs.
    """
    source = str(name_or_path)
    path = PACKAGED_DIR / f"{source}.txt" if source in packaged_names() else Path(source)
    return parse_labels(_read_text(path, source), source)


def parse_labels(text: str, source: str = "labels") -> list[str]:
    """One label per line; trailing blank lines are ignored, any other blank line is an error.

    A blank line in the middle would shift every later class by one index, which is silent and
    wrong, hence the error. Surrounding whitespace (and CR of CRLF files) is never part of a name.
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ArtifactError(f"{source}: the label file holds no labels")
    blank = [str(number) for number, line in enumerate(lines, start=1) if not line]
    if blank:
        raise ArtifactError(f"{source}: blank label on line {', '.join(blank)} (one class name per line)")
    return lines


def _read_text(path: Path, source: str) -> str:
    """The file's UTF-8 text, or one ArtifactError that says what is wrong with it."""
    if not path.is_file():
        known = ", ".join(packaged_names()) or "none"
        raise ArtifactError(f"{source}: no such label file, and not a packaged label list (packaged: {known})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{source}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ArtifactError(f"{source}: cannot read the label file ({exc.strerror})") from exc
