"""Fill the generated tables into README.md and docs/: every block

    <!-- include figures/bench/report.md -->
    ...
    <!-- end include -->

is replaced by that file (a Markdown table file; with `rows="A|B"`, its header and only the
rows whose first cell contains A or B), so no number is pasted by hand. `--check` changes
nothing and exits 1 when a block is out of date (the test suite runs it)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- include (?P<path>\S+)(?: rows=\"(?P<rows>[^\"]*)\")? -->\n)"
                   r"(?P<body>.*?)(<!-- end include -->)", re.S)


def included(path: str, rows: str | None) -> str:
    source = ROOT / path
    if not source.exists():
        raise SystemExit(f"error: included file not found: {path}")
    lines = source.read_text().splitlines()
    if rows is None:
        return "\n".join(lines) + "\n"
    wanted = rows.split("|")
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    if len(table) < 2:
        raise SystemExit(f"error: {path} has no Markdown table to take rows from")
    header, body = lines[table[0]:table[0] + 2], [lines[i] for i in table[2:]]
    chosen = [line for line in body if any(w in line.split("|")[1] for w in wanted)]
    return "\n".join(header + chosen) + "\n"


def synced(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + included(m["path"], m["rows"]) + m.group(5), text)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        new = synced(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
