from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def kernel_build(tmp_path_factory) -> Path:
    """The C kernels and the harness main compiled once per session (kernel_harness.py)."""
    from kernel_harness import build_kernels
    return build_kernels(tmp_path_factory.mktemp("kernels"))
