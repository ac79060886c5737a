"""runtime.labels: the packaged Kinetics-400 list (names, order, known indices) and label-file parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import ArtifactError, StamError
from runtime.labels import PACKAGED_DIR, load_labels, packaged_names, parse_labels

# Indices cross-checked against independent public Kinetics-400 class lists and an index table:
# the odd official spellings, and the pairs whose order depends on how folder names are sorted.
KNOWN_POSITIONS = {
    0: "abseiling",
    1: "air drumming",
    2: "answering questions",
    108: "dying hair",
    115: "eating ice cream",
    196: "massaging person's head",
    208: "passing American football (in game)",
    209: "passing American football (not in game)",
    212: "petting animal (not cat)",
    290: "sharpening knives",
    308: "skiing (not slalom or crosscountry)",
    309: "skiing crosscountry",
    368: "tying bow tie",
    369: "tying knot (not on a tie)",
    374: "using remote controller (not gaming)",
    399: "zumba",
}


def torchvision_download_folder(name: str) -> str:
    """The folder name torchvision's Kinetics downloader makes (`_make_ds_structure`)."""
    return name.replace(" ", "_").replace("'", "").replace("(", "").replace(")", "")


@pytest.fixture(scope="module")
def kinetics() -> list[str]:
    return load_labels("kinetics400")


def test_kinetics400_has_400_unique_clean_names(kinetics):
    assert len(kinetics) == 400
    assert len(set(kinetics)) == 400
    assert all(name and name == name.strip() for name in kinetics)
    assert all("  " not in name and "_" not in name for name in kinetics)


@pytest.mark.parametrize("index", sorted(KNOWN_POSITIONS))
def test_kinetics400_known_positions(kinetics, index):
    assert kinetics[index] == KNOWN_POSITIONS[index]


def test_kinetics400_is_python_sorted_by_folder_name(kinetics):
    """The order of `sorted()` over folder names, with spaces or with underscores (the same order)."""
    assert kinetics == sorted(kinetics)
    assert kinetics == sorted(kinetics, key=lambda name: name.replace(" ", "_"))


def test_torchvision_downloader_naming_swaps_only_the_two_skiing_classes(kinetics):
    """Dropping parentheses reorders exactly one pair: datasets laid out that way need a name map."""
    order = sorted(range(len(kinetics)), key=lambda i: torchvision_download_folder(kinetics[i]))
    moved = {position: index for position, index in enumerate(order) if position != index}
    assert moved == {308: 309, 309: 308}


def test_default_name_and_file_path_give_the_same_list(kinetics):
    assert "kinetics400" in packaged_names()
    assert load_labels() == kinetics
    assert load_labels(str(PACKAGED_DIR / "kinetics400.txt")) == kinetics


def test_label_file_trailing_blank_lines_and_crlf(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"archery\r\nbowling  \r\n juggling balls\r\n\r\n\n  \n")
    assert load_labels(str(path)) == ["archery", "bowling", "juggling balls"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"archery\n\nbowling\n", "blank label on line 2"),
        (b"", "holds no labels"),
        (b"\n \n", "holds no labels"),
        (b"archery\n\xff\xfe\n", "not a UTF-8 text file"),
    ],
)
def test_bad_label_files_raise_artifact_error(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "labels.txt"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        load_labels(str(path))


@pytest.mark.parametrize("name", ["missing.txt", "kinetics401", ""])
def test_missing_label_file_is_a_one_line_user_error(tmp_path: Path, name: str):
    with pytest.raises(ArtifactError, match="no such label file.*packaged: .*kinetics400") as info:
        load_labels(str(tmp_path / name) if name else name)
    assert isinstance(info.value, StamError) and info.value.exit_code != 0
    assert "\n" not in str(info.value)


def test_parse_labels_keeps_the_file_order():
    assert parse_labels("zumba\nabseiling\n") == ["zumba", "abseiling"]
