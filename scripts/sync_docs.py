"""Fill the generated tables into README.md and docs/: every block

    <!-- include figures/bench/report.md -->
    ...
    <!-- end include -->

is replaced by that file (a Markdown table file; with `rows="A|B"`, its header and only the
rows whose first cell contains A or B), so no number is pasted by hand. A whole file's
relative links are rewritten to point from the document that includes it. `--check` changes
nothing and exits 1 when a block is out of date (the test suite runs it)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- include (?P<path>\S+)(?: rows=\"(?P<rows>[^\"]*)\")? -->\n)"
                   r"(?P<body>.*?)(<!-- end include -->)", re.S)
LINK = re.compile(r"\]\(<?(?P<target>[^()<>\s]+)>?\)")  # a Markdown link's target


def relinked(text: str, source: Path, document: Path) -> str:
    """`text` of `source` with its relative link targets made relative to `document`."""
    def moved(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"[a-z]+:|#|/", target):  # a URL, an anchor or an absolute path
            return match.group(0)
        return f"](<{os.path.relpath(source.parent / target, document.parent)}>)"
    return LINK.sub(moved, text)


def included(path: str, rows: str | None, document: Path) -> str:
    source = ROOT / path
    if not source.exists():
        raise SystemExit(f"error: included file not found: {path}")
    lines = source.read_text().splitlines()
    if rows is None:
        return relinked("\n".join(lines) + "\n", source, document)
    wanted = rows.split("|")
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    if len(table) < 2:
        raise SystemExit(f"error: {path} has no Markdown table to take rows from")
    header, body = lines[table[0]:table[0] + 2], [lines[i] for i in table[2:]]
    chosen = [line for line in body if any(w in line.split("|")[1] for w in wanted)]
    return "\n".join(header + chosen) + "\n"


def synced(text: str, document: Path | None = None) -> str:
    """`text` of `document` (default: the README) with every include block refilled."""
    document = document or ROOT / "README.md"
    return BLOCK.sub(lambda m: m.group(1) + included(m["path"], m["rows"], document)
                     + m.group(5), text)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        new = synced(text, path)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
