#!/usr/bin/python3
"""Parameter table of helm/jobwire/README.md, generated from the `# --` comments of values.yaml.

    helm/readme-params.py --write   rewrite the table between the parameters markers
    helm/readme-params.py --check   exit 1 when README.md is not what --write would make
    helm/readme-params.py --table   print the table

Rules (helm-docs style): a key whose comment block contains a line starting with `# --` is one
row, described by that line and the comment lines after it; its children, if any, are not rows.
A mapping without such a comment is a section: its keys are rows. Any other key without a
`# --` comment is an error (exit 2), so no value goes undocumented.
Needs PyYAML (Debian's python3-yaml, /usr/bin/python3).
"""
import argparse
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
VALUES = os.path.join(HERE, "jobwire", "values.yaml")
README = os.path.join(HERE, "jobwire", "README.md")
START, END = "<!-- parameters:start -->", "<!-- parameters:end -->"
KEY = re.compile(r'^(\s*)("[^"]+"|[A-Za-z0-9_.\-/]+):(?:\s+(.*))?$')


def rows(values_path):
    """[(dotted path, description)] in file order; raises ValueError on undocumented keys."""
    data = yaml.safe_load(open(values_path))
    lines = open(values_path).read().splitlines()
    out, errors, stack, comments = [], [], [], []
    skip_deeper = None  # indent below which lines belong to a documented key
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_deeper is not None:
            if not stripped or indent > skip_deeper or (stripped.startswith("#") and indent > skip_deeper):
                continue
            skip_deeper = None
        if not stripped:
            comments = []
            continue
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        if stripped.startswith("- "):
            comments = []
            continue
        m = KEY.match(line)
        if not m:
            comments = []
            continue
        key = m.group(2).strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        value = data
        for k in path:
            value = value[k]
        doc = None
        for i in range(len(comments) - 1, -1, -1):
            if comments[i].startswith("# --"):
                doc = " ".join([comments[i][4:].strip()] + [c.lstrip("#").strip() for c in comments[i + 1:]])
                break
        comments = []
        if doc is not None:
            out.append((".".join(path), doc.strip(), value))
            skip_deeper = indent
        elif isinstance(value, dict) and value:
            stack.append((indent, key))
        else:
            errors.append(".".join(path))
            skip_deeper = indent
    if errors:
        raise ValueError("values without a `# --` comment: " + ", ".join(errors))
    return out


def default(value):
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > 70:
        return "see values.yaml"
    return "`" + text.replace("|", "\\|") + "`"


def table(values_path):
    lines = ["| Parameter | Description | Default |", "|---|---|---|"]
    for path, doc, value in rows(values_path):
        lines.append(f"| `{path}` | {doc.replace('|', chr(92) + '|')} | {default(value)} |")
    return "\n".join(lines) + "\n"


def render(readme_text, values_path):
    if START not in readme_text or END not in readme_text:
        raise ValueError(f"README.md lacks the {START} / {END} markers")
    head, rest = readme_text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + table(values_path) + END + tail


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    g.add_argument("--table", action="store_true")
    ap.add_argument("--values", default=VALUES)
    ap.add_argument("--readme", default=README)
    a = ap.parse_args()
    try:
        if a.table:
            sys.stdout.write(table(a.values))
            return 0
        current = open(a.readme).read()
        wanted = render(current, a.values)
    except ValueError as e:
        print(f"readme-params: {e}", file=sys.stderr)
        return 2
    if a.write:
        if wanted != current:
            open(a.readme, "w").write(wanted)
        return 0
    if wanted != current:
        print("readme-params: the parameter table of README.md is out of date; run helm/readme-params.py --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
