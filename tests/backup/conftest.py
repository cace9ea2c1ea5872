"""Fixtures shared with the security and audit tests."""

from tests.audit.conftest import checkpoint_file, make_trail  # noqa: F401
from tests.security.conftest import build_case  # noqa: F401
