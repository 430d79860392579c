"""fastbp.__version__, the installed package's metadata and CHANGELOG.md say the same version."""
import re
from importlib import metadata
from pathlib import Path

import pytest

import fastbp

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def test_metadata_matches_version():
    assert metadata.version("fastbp") == fastbp.__version__


def test_changelog_latest_release_is_the_version():
    if not CHANGELOG.exists():               # tests run outside a checkout (e.g. on a wheel)
        pytest.skip("CHANGELOG.md is not next to the tests")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$",
                          CHANGELOG.read_text(encoding="utf-8"), flags=re.M)
    assert releases, "CHANGELOG.md lists no release as '## [X.Y.Z] - YYYY-MM-DD'"
    assert releases[0][0] == fastbp.__version__
    # newest first, each version once
    versions = [tuple(map(int, v.split("."))) for v, _ in releases]
    assert versions == sorted(set(versions), reverse=True)
