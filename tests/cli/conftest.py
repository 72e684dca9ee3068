"""Fixtures the CLI tests share with the core tests they mirror."""

from tests.fusion.conftest import colin_3mm

__all__ = ["colin_3mm"]
