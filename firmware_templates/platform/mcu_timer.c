#include "mcu_timer.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define SYST_RELOAD 0x00FFFFFFu
#define SYST_ENABLE_TICKINT_CPUCLK 0x7u

static volatile uint32_t wraps;
static uint64_t overhead;

void SysTick_Handler(void)
{
    wraps++;
}

/* Neither is inlined: the empty measurement must make the same call as the real one. */
__attribute__((noinline)) static int empty(void)
{
    __asm__ volatile("" ::: "memory");
    return 0;
}

__attribute__((noinline)) static uint64_t measure_raw(int (*fn)(void), int *status)
{
    uint64_t t0 = mcu_timer_now();
    *status = fn();
    return mcu_timer_now() - t0;
}

void mcu_timer_start(void)
{
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
    int status;
    overhead = measure_raw(empty, &status);
}

/* Ticks since start, modulo 2^64 (only differences matter). The counter runs RELOAD..0;
 * the wrap interrupt is taken as it reaches 0, before the reload, so a 0 already belongs
 * to the next high word. Re-read when the interrupt lands between the two reads. */
uint64_t mcu_timer_now(void)
{
    uint32_t high, low;
    do {
        high = wraps;
        low = SYST_CVR;
    } while (high != wraps);
    uint64_t in_period = low ? low : SYST_RELOAD + 1u;
    return ((uint64_t)high << 24) + SYST_RELOAD - in_period;
}

uint64_t mcu_timer_measure(int (*fn)(void), int *status)
{
    uint64_t ticks = measure_raw(fn, status);
    return ticks > overhead ? ticks - overhead : 0;
}

uint64_t mcu_timer_overhead(void)
{
    return overhead;
}
