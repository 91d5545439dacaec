"""The errors mcu-compile reports to its users.

Each message is one line that names the cause and says how to fix it.
"""


class CompileError(Exception):
    """Base class: anything the user can act on (bad model, board too small...)."""


class UnsupportedOpError(CompileError):
    """The model uses an operator (or an operator variant) mcu-compile cannot compile."""


class TFLiteFormatError(CompileError):
    """The .tflite file is missing, truncated, corrupt or not a TFLite model."""


class BoardFitError(CompileError):
    """The compiled model does not fit the board's flash or RAM."""


class ToolchainError(CompileError):
    """The cross-compiler or a build tool is missing or failed."""


class InputError(CompileError):
    """Input data does not match the model (shape, dtype, count)."""
