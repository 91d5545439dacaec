from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path
