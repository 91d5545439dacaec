#include "mcu_report.h"
#include "board_config.h"
#include "mcu_io.h"
#ifdef MCU_CONSOLE_UART
#include "mcu_frame.h"
#endif

#ifdef MCU_CONSOLE_UART
void mcu_report_timer(uint64_t overhead_ticks)
{
    (void)overhead_ticks; /* travels in every READY frame (main.c) */
}

void mcu_report_output(uint32_t vector, uint32_t index, const int8_t *data, uint32_t size)
{
    mcu_frame_begin(MCU_FRAME_OUTPUT, 8 + size);
    mcu_frame_write_u32(vector);
    mcu_frame_write_u32(index);
    mcu_frame_write(data, size);
    mcu_frame_end();
}

void mcu_report_result(uint32_t vector, int32_t status, uint64_t ticks)
{
    mcu_frame_begin(MCU_FRAME_RESULT, 20);
    mcu_frame_write_u32(vector);
    mcu_frame_write_u32((uint32_t)status);
    mcu_frame_write_u64(ticks);
    mcu_frame_write_u32(mcu_stack_used());
    mcu_frame_end();
}

void mcu_report_done(void)
{
    mcu_flush();
    mcu_frame_begin(MCU_FRAME_DONE, 4);
    mcu_frame_write_u32(mcu_stack_used());
    mcu_frame_end();
}
#else
static void put_line(const char *tag, uint32_t vector, uint64_t value)
{
    mcu_puts(tag);
    mcu_put_u64(vector);
    mcu_puts(" ");
    mcu_put_u64(value);
    mcu_puts("\n");
}

void mcu_report_timer(uint64_t overhead_ticks)
{
    mcu_puts("MCU-TIMER ");
    mcu_put_u64(overhead_ticks);
    mcu_puts("\n");
}

void mcu_report_output(uint32_t vector, uint32_t index, const int8_t *data, uint32_t size)
{
    mcu_puts("MCU-OUT ");
    mcu_put_u64(vector);
    mcu_puts(" ");
    mcu_put_u64(index);
    mcu_puts(" ");
    mcu_put_hex_bytes(data, size);
    mcu_puts("\n");
}

void mcu_report_result(uint32_t vector, int32_t status, uint64_t ticks)
{
    (void)status; /* main.c reports only successful runs here */
    put_line("MCU-TICKS ", vector, ticks);
}

void mcu_report_done(void)
{
    mcu_puts("MCU-STACK ");
    mcu_put_u64(mcu_stack_used());
    mcu_puts("\nMCU-DONE\n");
}
#endif
