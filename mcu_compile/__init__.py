"""mcu-compile: PyTorch model -> int8 Edge program -> heapless C firmware for Arm microcontrollers."""
from .api import CompiledModel, ModelRun, compile, load
from .errors import CompileError

__all__ = ["compile", "load", "CompiledModel", "ModelRun", "CompileError"]
