"""mcu-compile: PyTorch model -> int8 Edge program -> heapless C firmware for Arm microcontrollers."""
from .errors import McuCompileError

__all__ = ["compile", "load", "CompiledModel", "ModelRun", "McuCompileError"]


def __getattr__(name):
    # The pipeline imports torch; load it only when it is used.
    if name in ("compile", "load"):
        from . import api
        return getattr(api, name)
    if name in ("CompiledModel", "ModelRun"):
        from . import project
        return getattr(project, name)
    raise AttributeError(f"module 'mcu_compile' has no attribute {name!r}")
