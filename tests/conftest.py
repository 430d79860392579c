"""Fixtures only; shared helpers live in tests/_helpers.py."""
import pytest

from _helpers import make_problem


@pytest.fixture
def problem():
    return make_problem
