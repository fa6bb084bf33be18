"""Print the README's configuration table from the Settings model (tests keep them in sync)."""

from __future__ import annotations

from streams.settings import REPO_ROOT, Settings


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if hasattr(default, "relative_to"):
            default = f"<repo>/{default.relative_to(REPO_ROOT)}"
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `O2C_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


def update_readme(path=REPO_ROOT / "README.md") -> None:
    """Rewrite the table between the README's settings-table markers."""
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    text = path.read_text()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{settings_table()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if "--update" in sys.argv:
        update_readme()
    else:
        print(settings_table())
