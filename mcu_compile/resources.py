"""Where the non-Python parts of the project live, in a checkout or an installed wheel."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """firmware_templates, cmsis_kernels, boards or simulators.

    In a checkout they sit beside the package; in a wheel they are mapped into
    mcu_compile/_data/ (see pyproject.toml).
    """
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mcu-compile installation is incomplete: {name}/ not found "
                            f"next to {_PACKAGE}; reinstall the package")
