"""Board profiles (hardware/boards/<name>.json): finding, loading and validating them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import ValidationError
from provisioning.schema import HARDWARE_DIR, load_json

BOARDS_DIR = HARDWARE_DIR / "boards"


def board_names(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in Path(boards_dir).glob("*.json"))


def load_board(name: str, boards_dir: Path = BOARDS_DIR) -> dict[str, Any]:
    """The validated profile called ``name``; an unknown name lists the known ones."""
    path = Path(boards_dir) / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(board_names(boards_dir)) or "none"
        raise ValidationError("board", f"unknown board {name!r}; known boards: {known}")
    return load_json(path, "board")
