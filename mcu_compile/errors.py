"""The errors mcu-compile reports to its users.

Each message is one line that names the cause and says how to fix it.
"""


class McuCompileError(Exception):
    """Base class: anything the user can act on (bad model, board too small...)."""


class UnsupportedOpError(McuCompileError):
    """The model uses an operator (or an operator variant) mcu-compile cannot compile."""


class TFLiteFormatError(McuCompileError):
    """The .tflite file is missing, truncated, corrupt or not a TFLite model."""


class BoardFitError(McuCompileError):
    """The compiled model does not fit the board's flash or RAM."""


class ToolchainError(McuCompileError):
    """The cross-compiler or a build tool is missing or failed."""


class InputError(McuCompileError):
    """Input data does not match the model (shape, dtype, count)."""


class IRError(McuCompileError):
    """The Edge program breaks an invariant (found by Program.verify() or the IR itself):
    a corrupt input file, or a bug in the pass named in the message."""


class BoardFileError(McuCompileError):
    """A board file is malformed: a missing or mistyped field, overlapping regions."""
