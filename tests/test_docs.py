"""README.md and docs/: short, in step with the generated tables they include, and about
the project only."""
import re
import subprocess
import sys

from .conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import sync_docs  # noqa: E402


def test_the_included_tables_are_the_generated_files():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "sync_docs.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_include_takes_the_header_and_the_chosen_rows(tmp_path, monkeypatch):
    (tmp_path / "t.md").write_text("**title**\n\n| a | b |\n|---|---|\n| x one | 1 |\n"
                                   "| y two | 2 |\n| z one | 3 |\n\nfooter\n")
    monkeypatch.setattr(sync_docs, "ROOT", tmp_path)
    text = 'before\n<!-- include t.md rows="one" -->\nold\n<!-- end include -->\nafter\n'
    assert sync_docs.synced(text) == ('before\n<!-- include t.md rows="one" -->\n| a | b |\n'
                                      '|---|---|\n| x one | 1 |\n| z one | 3 |\n'
                                      '<!-- end include -->\nafter\n')
    whole = sync_docs.synced("<!-- include t.md -->\n<!-- end include -->\n")
    assert "footer" in whole and "| y two | 2 |" in whole


def test_a_whole_include_keeps_its_links_pointing_at_their_files(tmp_path, monkeypatch):
    (tmp_path / "figures" / "p").mkdir(parents=True)
    (tmp_path / "figures" / "p" / "r.md").write_text(
        "| a |\n|---|\n\n![trend](<trend.png>) [paper](https://x.org/a.pdf) [top](#a)\n")
    monkeypatch.setattr(sync_docs, "ROOT", tmp_path)
    text = "<!-- include figures/p/r.md -->\n<!-- end include -->\n"
    deep = sync_docs.synced(text, tmp_path / "docs" / "findings" / "f.md")
    assert "![trend](<../../figures/p/trend.png>)" in deep
    assert "(https://x.org/a.pdf)" in deep and "(#a)" in deep
    assert "![trend](<figures/p/trend.png>)" in sync_docs.synced(text, tmp_path / "README.md")


def test_the_readme_is_a_front_door():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 130
    assert any("./run_all.sh" in line for line in lines[:40])
    assert any("./run_tests.sh" in line for line in lines[:40])


def test_every_figure_the_readmes_notebook_table_names_exists():
    """The table's figures are those the README's named profile's notebooks wrote."""
    text = (REPO_ROOT / "README.md").read_text()
    profile = re.search(r"carry the outputs of the (\S+) profile", text).group(1)
    table = text[text.index("| paper | notebook | figures |"):]
    table = table[:table.index("\n\n")]
    named = {name for row in table.splitlines()[2:] for name in
             re.findall(r"`([a-z0-9_]+)`", row.split("|")[3])}
    assert named, "no figure named"
    folder = REPO_ROOT / "figures" / profile
    missing = sorted(n for n in named if not (folder / f"{n}.png").exists()
                     and not (folder / f"{n}.md").exists())
    assert not missing, f"{folder}: {missing}"


def test_the_reference_docs_say_what_is():
    history = re.compile(r"[0-9a-f]{7}\b|from now on|first try|What comes next|found later")
    for path in sorted((REPO_ROOT / "docs").glob("*.md")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not history.search(line), f"{path.name}:{number}: {line}"


def test_the_docs_speak_of_the_project_only():
    narration = re.compile(r"\bissue \d+|\bissue's\b|GPU window|device tool|\bsession\b",
                           re.I)
    for path in sync_docs.documents():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not narration.search(line), f"{path.name}:{number}: {line}"


def test_every_relative_link_of_the_docs_points_to_a_file():
    link = re.compile(r"\]\((?!https?://|#)<?([^)#\s>]+)")  # <target> or target
    for path in sync_docs.documents():
        for target in link.findall(path.read_text()):
            assert (path.parent / target).exists(), f"{path.relative_to(REPO_ROOT)}: {target}"
