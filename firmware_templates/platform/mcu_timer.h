/* Tick counter on SysTick (processor clock) with a software high word. Under QEMU
 * -icount the ticks advance with executed instructions, so deltas are deterministic. */
#ifndef MCU_TIMER_H
#define MCU_TIMER_H
#include <stdint.h>

void mcu_timer_start(void);
uint64_t mcu_timer_now(void);
/* Ticks spent in fn() alone (the cost of an empty measurement is subtracted); fn's
 * return value (a model's status) into *status. */
uint64_t mcu_timer_measure(int (*fn)(void), int *status);
uint64_t mcu_timer_overhead(void);

#endif
