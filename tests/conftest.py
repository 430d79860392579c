"""Fixtures only; shared helpers live in tests/_helpers.py."""
import pytest

from _helpers import make_problem


@pytest.fixture
def problem():
    return make_problem


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt during the test, as at a terminal. A process started in the
    background by a shell (as CI may start the suite) inherits SIGINT ignored, and Python then
    installs no handler: a Ctrl-C test would see nothing."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
