import re
import subprocess
import tomllib

import pytest
import yaml

from .conftest import REPO_ROOT


def _pins(lines):
    return dict(re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip()).groups()
                for line in lines if "==" in line)


def test_environment_yml_has_the_pyproject_pins():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == pyproject
    assert "python=3.11" in conda["dependencies"]
    assert pyproject["torch"] == "2.14.1" and pyproject["torchvision"] == "0.29.1"


def test_lock_file_agrees_with_direct_pins():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    lock = {name.lower(): v for name, v in
            _pins((REPO_ROOT / "requirements-lock.txt").read_text().splitlines()).items()}
    for name, version in pyproject.items():
        assert lock.get(name.lower()) == version, name


def _run_all(*args, cwd="/"):
    return subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_run_all_help_and_bad_options_from_any_directory(tmp_path):
    help_text = _run_all("--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "--profile" in help_text.stdout
    bad = _run_all("--frobnicate", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown option '--frobnicate'" in bad.stderr
    missing = _run_all("--profile", "paper", "--data-root", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "data root not found" in missing.stderr


def test_run_all_stops_on_bad_input_before_any_notebook(tmp_path):
    profile = tmp_path / "badrun.yaml"
    profile.write_text((REPO_ROOT / "profiles" / "ci.yaml").read_text().replace("name: ci",
                                                                                "name: badrun"))
    result = _run_all("--profile", str(profile), "--methods", "dmm", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown method 'dmm'")
    assert not (REPO_ROOT / "runs" / "badrun").exists()


def test_notebook_parameters_follow_the_command_line(tmp_path):
    import sys
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from run_notebooks import build_parser, notebook_parameters
    args = build_parser().parse_args(["--profile", "smoke", "--data-root", str(tmp_path),
                                      "--targets", "P,S", "--ipc", "10", "--stages", "table1"])
    assert notebook_parameters(args) == {"profile": "smoke", "run": {
        "progress": True, "data_root": str(tmp_path.resolve()), "targets": "P,S", "ipcs": "10",
        "stages": "table1"}}


def test_a_notebooks_unknown_option_is_named(capsys):
    from cadm_utils.errors import ConfigError
    from cadm_utils.reporting.notebook import open_notebook

    with pytest.raises(ConfigError, match="unknown notebook option 'target'"):
        open_notebook("ci", {"target": "P"})
    runner, cells = open_notebook("ci", {"targets": "P", "ipcs": "1", "progress": False})
    assert {c.target for c in cells} <= {"P", "in-domain"} and {c.ipc for c in cells} <= {0, 1}
    assert capsys.readouterr().out == f"{len(cells)} cells on cpu\n"


LAYERS = ("data", "method", "experiment", "reporting")  # each imports only those before it


def test_layers_import_one_way():
    import ast

    for rank, layer in enumerate(LAYERS):
        for path in (REPO_ROOT / "cadm_utils" / layer).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                    imported = node.module.split(".")[0]
                    assert LAYERS.index(imported) < rank if imported in LAYERS else True, \
                        f"{path.name} ({layer}) imports {imported}"


def test_every_command_prints_its_help():
    """argparse %-formats help strings: a bare '%' in one breaks --help of every command."""
    import contextlib
    import io

    import pytest

    from cadm_utils.__main__ import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for argv in [["--help"]] + [[name, "--help"] for name in commands]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
            parser.parse_args(argv)
        assert done.value.code == 0 and "usage:" in out.getvalue(), argv


def test_run_all_the_cli_and_the_notebooks_name_the_same_run_options():
    """One list of run options (cadm_utils/options.py): run_all.sh's case list, the command
    line's parser and the notebooks' run keys must agree on it."""
    import re

    from cadm_utils.__main__ import build_parser
    from cadm_utils.options import CELL_OPTIONS, NOTEBOOK_KEYS
    from cadm_utils.reporting import notebook

    script = (REPO_ROOT / "run_all.sh").read_text()
    valued = re.search(r"^\s*(--profile\|[-|a-z]+)\)\n\s*\[ \$# -ge 2 \]", script, re.M)
    flags = {option.flag for option in CELL_OPTIONS}
    assert set(valued.group(1).split("|")) == {"--profile"} | flags
    passed_on = re.search(r"^\s*([-|a-z]+)\)\n\s*extra\+=\(\"\$1\" \"\$2\"\)", script, re.M)
    assert set(passed_on.group(1).split("|")) == flags - {"--data-root"}
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    cli = {flag for action in run._actions for flag in action.option_strings}
    assert {"--profile"} | flags <= cli
    assert {a.dest for a in run._actions if set(a.option_strings) & flags} == \
        {o.name for o in CELL_OPTIONS}
    assert notebook.NOTEBOOK_KEYS == NOTEBOOK_KEYS
    assert set(NOTEBOOK_KEYS) == {o.name for o in CELL_OPTIONS} | {"progress"}
