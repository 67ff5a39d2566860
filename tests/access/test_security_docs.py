"""docs/security.md prints the permission matrix: the same tables as the code's data."""

from __future__ import annotations

from pathlib import Path

from mentatlab.access.roles import ROLE_PERMISSIONS, Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def role_table() -> str:
    """Roles (rows) × permissions (columns), ✓ where held."""
    roles = list(ROLE_PERMISSIONS)
    lines = ["| permission | " + " | ".join(f"`{r}`" for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for permission in Permission:
        marks = []
        for role in roles:
            held = permission in ROLE_PERMISSIONS[role]
            if permission is Permission.MANAGE_ORGS and role == "key:admin":
                marks.append("installation key")
            else:
                marks.append("✓" if held else "")
        lines.append(f"| `{permission.value}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)


def route_table() -> str:
    """Every route and what it needs."""
    lines = ["| route | needs |", "|---|---|"]
    for (method, path), need in sorted(ROUTE_PERMISSIONS.items(), key=lambda i: (i[0][1], i[0][0])):
        lines.append(f"| `{method} {path}` | `{getattr(need, 'value', need)}` |")
    return "\n".join(lines)


def test_the_role_table_in_the_docs_is_the_codes() -> None:
    assert role_table() in DOC.read_text(), "regenerate: python tests/access/test_security_docs.py"


def test_the_route_table_in_the_docs_is_the_codes() -> None:
    assert route_table() in DOC.read_text(), "regenerate: python tests/access/test_security_docs.py"


if __name__ == "__main__":
    print(role_table(), route_table(), sep="\n\n")
