/* Board start-up from the board file's data (board_config.h): L1 caches, the [clock] steps, the
 * console UART's clock and pins. No vendor code, no CMSIS headers. */
#ifndef MCU_BOARD_H
#define MCU_BOARD_H
#include <stdint.h>

/* The core clock actually running: the board's [clock] hz once every clock step completed, its
 * reset clock otherwise (a wait timed out, e.g. a crystal that does not start, or QEMU, whose
 * STM32 machines model no RCC). Set by mcu_board_init(). */
extern uint32_t mcu_core_clock_hz;

/* How many [clock] steps completed: all of them when the set-up completed, else the index of the
 * wait that timed out (the steps after it did not run). */
extern uint32_t mcu_clock_steps_done;

/* Called once by Reset_Handler, after .data/.bss are set up and before main: invalidates and
 * enables the L1 caches on cores that have them, then runs the clock steps. */
void mcu_board_init(void);

/* The console UART's kernel clock: uart.clock_hz when the clock set-up completed, else
 * uart.reset_clock_hz (0 on a board without [uart]). */
uint32_t mcu_uart_clock_hz(void);

/* Sets the UART's enable bits (clocks, supplies) and puts its pins in alternate-function mode. */
void mcu_board_uart_init_pins(void);

#endif
