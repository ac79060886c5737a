"""benchmarks.docs_tables: every results file renders with its machine, date and command, or is refused."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import docs_tables
from benchmarks.docs_tables import HEADLINE_END, HEADLINE_START, RENDERERS, RESULTS, headline, render_file
from runtime.errors import StamError


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_each_registered_file_renders_a_table_with_its_provenance(name):
    document = json.loads((RESULTS / name).read_text())
    text = render_file(RESULTS / name)
    assert "\n|---" in text  # at least one Markdown table
    assert f"Command: `{document['command']}`" in text
    assert f"Date: {document['created'][:10]}" in text and f"`benchmarks/results/{name}`" in text
    assert f"CPU {document['machine']['cpu']} (" in text  # the CPU with its flags, or a note saying what is known


def test_every_results_file_has_a_renderer():
    assert sorted(p.name for p in RESULTS.glob("*.json")) == sorted(RENDERERS)


@pytest.mark.parametrize("missing", ["machine", "created", "command"])
def test_a_results_file_without_its_provenance_is_refused(tmp_path, missing):
    name = "timeline_cpu.json"
    document = json.loads((RESULTS / name).read_text())
    del document[missing]
    (tmp_path / name).write_text(json.dumps(document))
    with pytest.raises(StamError, match=f"{name}: no {missing}"):
        render_file(tmp_path / name)


def test_a_bare_list_is_refused(tmp_path):
    (tmp_path / "accuracy_motion.json").write_text("[]")
    with pytest.raises(StamError, match="a results file is a JSON object"):
        render_file(tmp_path / "accuracy_motion.json")


def test_the_command_writes_every_table_and_refuses_an_unregistered_file(tmp_path, capsys):
    out = tmp_path / "generated"
    assert docs_tables.main(["--out", str(out), "--no-readme"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name[:-5]}.md" for name in RENDERERS)
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    (results / "soak_cpu.json").write_text("{}")
    assert docs_tables.main(["--results", str(results), "--out", str(out), "--no-readme"]) == 2
    assert "error: no renderer for soak_cpu.json" in capsys.readouterr().err


def test_the_readme_holds_the_rendered_headline_numbers():
    readme = (RESULTS.parents[1] / "README.md").read_text()
    block = readme[readme.index(HEADLINE_START) + len(HEADLINE_START) : readme.index(HEADLINE_END)]
    assert block.strip() == headline().strip(), "README's numbers are stale: run python -m benchmarks.docs_tables"


def test_replace_headline_rewrites_only_the_block():
    text = f"intro\n{HEADLINE_START}\nold\n{HEADLINE_END}\nrest\n"
    assert docs_tables.replace_headline(text, "new") == f"intro\n{HEADLINE_START}\nnew\n{HEADLINE_END}\nrest\n"
    with pytest.raises(StamError, match="headline markers"):
        docs_tables.replace_headline("no markers", "new")


def test_the_hostile_table_without_the_server_case_shows_the_command_line_cases_only():
    document = json.loads((RESULTS / "hostile_cpu.json").read_text())
    del document["serve"]
    text = docs_tables.render_hostile(document)
    assert document["huge_declared"]["file"] in text and document["size_switch"]["file"] in text
    assert "stam-serve" not in text
