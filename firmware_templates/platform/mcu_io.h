/* Console and exit: over Arm semihosting, or over the board's UART in TEXT frames
 * (board_config.h: MCU_CONSOLE_UART); tiny formatters so no printf is linked. */
#ifndef MCU_IO_H
#define MCU_IO_H
#include <stdint.h>

/* Readies the console before anything runs: a UART receives only once enabled, and the
 * host may send while the bundled test vectors run. */
void mcu_console_init(void);
void mcu_puts(const char *s);
void mcu_put_u64(uint64_t v);
void mcu_put_hex32(uint32_t v);
void mcu_put_hex_bytes(const void *data, uint32_t n);
void mcu_flush(void);
void mcu_exit(int code) __attribute__((noreturn));

/* Deepest stack use so far in bytes (startup.c paints the stack). */
uint32_t mcu_stack_used(void);

#endif
