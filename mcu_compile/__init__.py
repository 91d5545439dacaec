"""mcu-compile: PyTorch model -> heapless C firmware for Arm microcontrollers."""
