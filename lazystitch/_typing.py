"""Shared type aliases."""

from __future__ import annotations

from typing import TypeAlias

TileKey: TypeAlias = tuple[int, int]
"""A tile's (row, col) in the acquisition grid."""

Shape: TypeAlias = tuple[int, ...]
