/* Board start-up, driven by the data board_config.h carries from the board file. */
#include <stdint.h>
#include "board_config.h"
#include "mcu_board.h"

#define REG32(address) (*(volatile uint32_t *)(address))

uint32_t mcu_core_clock_hz = MCU_RESET_CLOCK_HZ;
uint32_t mcu_clock_steps_done;

/* ---- L1 caches (Cortex-M7, M55, M85) ------------------------------------------------------------
 * Armv7-M and Armv8.1-M: the caches come up disabled and their contents are UNKNOWN after reset,
 * so each is invalidated before it is enabled: the instruction cache with ICIALLU, the data cache
 * line by line with DCISW over every set and way of the level-1 data cache (geometry from CCSIDR,
 * selected by CSSELR = 0). A barrier ends each step. A cache that is not implemented ignores all of
 * this (CCR.IC/DC RAZ/WI, the maintenance registers WI); QEMU models no caches and ignores it too. */
#ifdef MCU_HAS_L1_CACHES
#define SCB_CCR 0xE000ED14u
#define SCB_CCSIDR 0xE000ED80u
#define SCB_CSSELR 0xE000ED84u
#define SCB_ICIALLU 0xE000EF50u
#define SCB_DCISW 0xE000EF60u
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

static inline void barriers(void)
{
    __asm__ volatile("dsb\n isb" ::: "memory");
}

/* log2 of n rounded up (n >= 1). */
static uint32_t ceil_log2(uint32_t n)
{
    uint32_t bits = 0;
    while ((1u << bits) < n)
        bits++;
    return bits;
}

static void enable_caches(void)
{
    if (!(REG32(SCB_CCR) & CCR_IC)) {
        barriers();
        REG32(SCB_ICIALLU) = 0;
        barriers();
        REG32(SCB_CCR) |= CCR_IC;
        barriers();
    }
    if (!(REG32(SCB_CCR) & CCR_DC)) { /* already on: it may hold dirty lines, leave it */
        REG32(SCB_CSSELR) = 0;        /* level 1, data cache */
        barriers();
        uint32_t ccsidr = REG32(SCB_CCSIDR);
        uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1;
        uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1;
        uint32_t set_shift = (ccsidr & 0x7u) + 4;           /* log2(line bytes) */
        uint32_t way_shift = 32 - ceil_log2(ways);          /* way in the top bits */
        for (uint32_t set = 0; set < sets; set++)
            for (uint32_t way = 0; way < ways; way++)
                REG32(SCB_DCISW) = (ways > 1 ? way << way_shift : 0) | (set << set_shift);
        barriers();
        REG32(SCB_CCR) |= CCR_DC;
        barriers();
    }
}
#endif

/* ---- clock steps --------------------------------------------------------------------------------
 * A write step is a read-modify-write: register = (register & ~clear) | set. A wait step polls
 * (register & mask) == value at most MCU_CLOCK_WAIT_LOOPS times; when it never holds, the rest of
 * the steps is skipped and the board stays on its reset clock (the board file orders its steps so
 * that this is safe: nothing that slows or stops the chip before the last wait). */
#if MCU_CLOCK_STEP_COUNT > 0
enum { MCU_CLOCK_WRITE, MCU_CLOCK_WAIT };

typedef struct {
    uint32_t kind;
    uint32_t address;
    uint32_t a; /* write: bits to set; wait: mask */
    uint32_t b; /* write: bits to clear; wait: value */
} clock_step;

static const clock_step clock_steps[MCU_CLOCK_STEP_COUNT] = MCU_CLOCK_STEPS;

/* The number of steps that completed. */
static uint32_t run_clock_steps(void)
{
    for (uint32_t i = 0; i < MCU_CLOCK_STEP_COUNT; i++) {
        const clock_step *step = &clock_steps[i];
        volatile uint32_t *reg = (volatile uint32_t *)step->address;
        if (step->kind == MCU_CLOCK_WRITE) {
            *reg = (*reg & ~step->b) | step->a;
            continue;
        }
        uint32_t polls = MCU_CLOCK_WAIT_LOOPS;
        while ((*reg & step->a) != step->b)
            if (--polls == 0)
                return i;
    }
    return MCU_CLOCK_STEP_COUNT;
}
#endif

void mcu_board_init(void)
{
#ifdef MCU_HAS_L1_CACHES
    enable_caches();
#endif
#if MCU_CLOCK_STEP_COUNT > 0
    mcu_clock_steps_done = run_clock_steps();
    mcu_core_clock_hz = mcu_clock_steps_done == MCU_CLOCK_STEP_COUNT ? MCU_CLOCK_HZ : MCU_RESET_CLOCK_HZ;
#else
    mcu_core_clock_hz = MCU_CLOCK_HZ;
#endif
}

/* ---- console UART -------------------------------------------------------------------------------- */
uint32_t mcu_uart_clock_hz(void)
{
#ifdef MCU_UART_BASE
#if MCU_CLOCK_STEP_COUNT > 0
    return mcu_clock_steps_done == MCU_CLOCK_STEP_COUNT ? MCU_UART_CLOCK_HZ : MCU_UART_RESET_CLOCK_HZ;
#else
    return MCU_UART_CLOCK_HZ;
#endif
#else
    return 0;
#endif
}

#if defined(MCU_UART_PIN_COUNT) && MCU_UART_PIN_COUNT > 0
/* STM32 GPIO (F2/F4/F7/L4/H7/U5 layout): MODER 0x00 (2 bits per pin, 10 = alternate function),
 * OTYPER 0x04 (0 = push-pull), OSPEEDR 0x08 (10 = high speed), PUPDR 0x0C (01 = pull-up: an idle
 * UART line is high), AFRL 0x20 / AFRH 0x24 (4 bits per pin). The alternate function is selected
 * before MODER switches the pin to it, so the pin never drives another function. */
#define GPIO_MODER 0x00u
#define GPIO_OTYPER 0x04u
#define GPIO_OSPEEDR 0x08u
#define GPIO_PUPDR 0x0Cu
#define GPIO_AFRL 0x20u

static void set_field(uint32_t address, uint32_t shift, uint32_t width_mask, uint32_t value)
{
    REG32(address) = (REG32(address) & ~(width_mask << shift)) | (value << shift);
}
#endif

void mcu_board_uart_init_pins(void)
{
#if defined(MCU_UART_ENABLE_COUNT) && MCU_UART_ENABLE_COUNT > 0
    static const uint32_t enable[MCU_UART_ENABLE_COUNT][2] = MCU_UART_ENABLE;
    for (uint32_t i = 0; i < MCU_UART_ENABLE_COUNT; i++) {
        REG32(enable[i][0]) |= 1u << enable[i][1];
        (void)REG32(enable[i][0]); /* read back: the clock is running before the next access */
    }
#endif
#if defined(MCU_UART_PIN_COUNT) && MCU_UART_PIN_COUNT > 0
    static const uint32_t pins[MCU_UART_PIN_COUNT][3] = MCU_UART_PINS;
    for (uint32_t i = 0; i < MCU_UART_PIN_COUNT; i++) {
        uint32_t port = pins[i][0], pin = pins[i][1], af = pins[i][2];
        set_field(port + GPIO_AFRL + 4 * (pin / 8), 4 * (pin % 8), 0xFu, af);
        set_field(port + GPIO_OTYPER, pin, 0x1u, 0);
        set_field(port + GPIO_OSPEEDR, 2 * pin, 0x3u, 2);
        set_field(port + GPIO_PUPDR, 2 * pin, 0x3u, 1);
        set_field(port + GPIO_MODER, 2 * pin, 0x3u, 2);
    }
#endif
}
