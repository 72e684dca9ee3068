"""Fixtures of the napari tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def napari_settings(tmp_path, monkeypatch):
    """napari's settings for this test only, in ``tmp_path`` (napari saves every change to
    its settings file at once; a test must not change the person's reader preferences).
    Request it before ``make_napari_viewer``."""
    from napari import settings

    fresh = settings.NapariSettings(config_path=tmp_path / "napari-settings.yaml")
    fresh._connect_events()
    monkeypatch.setattr(settings, "_SETTINGS", fresh)
    return fresh
