#include "mcu_layer_hooks.h"
#ifdef MCU_LAYER_HOOKS
#include "mcu_io.h"
#include "mcu_timer.h"

#ifdef MCU_PROFILE
static uint64_t layer_start;

void mcu_layer_begin(void)
{
    layer_start = mcu_timer_now();
}

/* The op's ticks are taken before printing, and the next op's clock starts after it, so the
 * report's cost is not in the figures; one timer read per mark remains (MCU-TIMER is its
 * cost for a pair of reads, about the same). */
void mcu_layer_done(int op, const void *output, uint32_t bytes)
{
    uint64_t ticks = mcu_timer_now() - layer_start;
    (void)output;
    (void)bytes;
    mcu_puts("MCU-LAYER ");
    mcu_put_u64((uint32_t)op);
    mcu_puts(" ");
    mcu_put_u64(ticks);
    mcu_puts("\n");
    layer_start = mcu_timer_now();
}
#else /* MCU_DEBUG */
void mcu_layer_begin(void)
{
}

void mcu_layer_done(int op, const void *output, uint32_t bytes)
{
    mcu_puts("MCU-TENSOR ");
    mcu_put_u64((uint32_t)op);
    mcu_puts(" ");
    mcu_put_hex_bytes(output, bytes);
    mcu_puts("\n");
}
#endif
#endif /* MCU_LAYER_HOOKS */
