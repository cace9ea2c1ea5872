"""Fixtures shared with the security tests."""

from tests.security.conftest import build_case  # noqa: F401
