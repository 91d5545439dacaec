/* Results of the test harness (main.c), to the host: protocol lines over semihosting
 * (MCU-TIMER, MCU-OUT, MCU-TICKS, MCU-STACK, MCU-DONE; see main.c) or, on a UART
 * console, the frames of mcu_frame.h. */
#ifndef MCU_REPORT_H
#define MCU_REPORT_H
#include <stdint.h>

void mcu_report_timer(uint64_t overhead_ticks);
void mcu_report_output(uint32_t vector, uint32_t index, const int8_t *data, uint32_t size);
void mcu_report_result(uint32_t vector, int32_t status, uint64_t ticks);
void mcu_report_done(void);

#endif
