"""docs/node.md's parameter table, generated from params.SPECS (`python -m
stemseg_ros.param_docs`; a test keeps the page equal)."""
from __future__ import annotations

from stemseg_ros.params import SPECS


def markdown_table() -> str:
    """The parameter table of docs/node.md, one row per parameter of SPECS."""
    rows = ["| parameter | default | allowed | changes | meaning |", "|---|---|---|---|---|"]
    for s in SPECS:
        default = "[]" if s.default == [] else ('""' if s.default == "" else str(s.default))
        changes = "start" if s.read_only else "live" if s.live else "reload"
        rows.append(f"| `{s.name}` | `{default}` | {s.allowed()} | "
                    f"{changes} | {s.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
