"""Shared pieces of the integration tests: where the binaries and fixtures are."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# The plain build and the AddressSanitizer/UBSan build; each test runs against both.
BINARIES = {
    "release": ROOT / "seekd",
    "asan": ROOT / "build" / "asan" / "seekd",
}


def pytest_generate_tests(metafunc):
    if "seekd_bin" in metafunc.fixturenames:
        names = [n for n in BINARIES if BINARIES[n].exists()]
        metafunc.parametrize("seekd_bin", [str(BINARIES[n]) for n in names], ids=names)


@pytest.fixture
def seekd_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env
