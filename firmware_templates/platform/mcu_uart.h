/* Polled console UART of the board (board_config.h: MCU_UART_CMSDK, MCU_UART_STM32F4,
 * MCU_UART_STM32 or MCU_UART_STM32_LPUART at MCU_UART_BASE, MCU_UART_BAUD). Blocking,
 * no interrupts, no buffers: the framed protocol (mcu_frame.h) paces both directions. */
#ifndef MCU_UART_H
#define MCU_UART_H
#include <stdint.h>

/* Sets the UART up on its first call (every frame calls it: a fault report before main()
 * still gets out); later calls return at once. */
void mcu_uart_init(void);
void mcu_uart_putc(uint8_t byte);
uint8_t mcu_uart_getc(void);
/* Returns once every byte written has left the transmitter (before a halt or reset). */
void mcu_uart_drain(void);

#endif
