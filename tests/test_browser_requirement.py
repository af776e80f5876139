"""The browser tests skip where Chromium is missing, except where AIGDETECT_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import report_support
from report_support import REQUIRE_BROWSER_ENV, require_chromium


def test_a_missing_chromium_skips_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_support, "CHROMIUM", str(tmp_path / "chromium"))
    monkeypatch.delenv(REQUIRE_BROWSER_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        require_chromium()


def test_a_missing_chromium_fails_where_it_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "chromium"
    monkeypatch.setattr(report_support, "CHROMIUM", str(missing))
    monkeypatch.setenv(REQUIRE_BROWSER_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_chromium()
    assert str(failed.value) == f"{missing} is not installed (apt-get install -y chromium), and {REQUIRE_BROWSER_ENV}=1 requires it"
    assert "\n" not in str(failed.value)


def test_an_installed_chromium_neither_skips_nor_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    present = tmp_path / "chromium"
    present.write_bytes(b"")
    monkeypatch.setattr(report_support, "CHROMIUM", str(present))
    monkeypatch.setenv(REQUIRE_BROWSER_ENV, "1")
    assert require_chromium() is None
