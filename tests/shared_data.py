"""Where the project's offline data mirror sits beside the checkout (../shared/data)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mirror = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
