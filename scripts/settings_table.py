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


if __name__ == "__main__":
    print(settings_table())
