/* Vector table, reset and fault handling. No CMSIS, no heap, no C library start-up.
 * Reset: stack limit (Armv8-M), VTOR, FPU/MVE access, .data/.bss, then the board's start-up
 * (mcu_board.c: L1 caches, clock steps), the stack paint, and main. */
#include <stdint.h>
#include "mcu_board.h"
#include "mcu_io.h"

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2C)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38)
#define CPACR_CP10_CP11_FULL (0xFu << 20)
#define STACK_PAINT 0xA5A5A5A5u
#define EXIT_FAULT 3

#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define HAS_MSPLIM 1
#endif

extern uint32_t __stack_limit[], __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);
void mcu_fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((noreturn));

/* External interrupts: only the Ethos-U's, when the build defines MCU_NPU_IRQ (its NVIC number,
 * the board's [npu] irq); every other external vector reports a fault. */
#ifdef MCU_NPU_IRQ
void mcu_npu_irq_handler(void);
#define VECTOR_COUNT (16 + (MCU_NPU_IRQ) + 1)
#else
#define VECTOR_COUNT 16
#endif

/* Small private stack so that a fault report works even after a stack overflow. */
uint64_t mcu_fault_stack[32];

__attribute__((section(".vectors"), used))
static void (*const vector_table[VECTOR_COUNT])(void) = {
    (void (*)(void))__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (v8-M) */
    0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    SysTick_Handler,
#ifdef MCU_NPU_IRQ
#if (MCU_NPU_IRQ) > 0
    [16 ... 16 + (MCU_NPU_IRQ) - 1] = Fault_Handler,
#endif
    [16 + (MCU_NPU_IRQ)] = mcu_npu_irq_handler,
#endif
};

/* Separate from Reset_Handler so that no FP/MVE instruction (e.g. a vectorized copy)
 * can be scheduled before CPACR grants access. */
__attribute__((noinline)) static void init_memory(void)
{
    uint32_t *src = __data_load;
    for (uint32_t *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
}

/* Fill the unused stack with a pattern; mcu_stack_used() finds the high-water mark. */
__attribute__((noinline)) static void paint_stack(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = __stack_limit; p < sp - 16;)
        *p++ = STACK_PAINT;
}

uint32_t mcu_stack_used(void)
{
    const uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == STACK_PAINT)
        p++;
    return (uint32_t)((__stack_top - p) * sizeof(uint32_t));
}

void Reset_Handler(void)
{
#ifdef HAS_MSPLIM
    __asm__ volatile("msr msplim, %0" ::"r"(__stack_limit));
#endif
    /* The table at the start of the code region, also when a boot ROM or a bootloader's Go
     * started the firmware with VTOR pointing elsewhere (e.g. STM32 system memory). */
    SCB_VTOR = (uint32_t)vector_table;
    SCB_CPACR |= CPACR_CP10_CP11_FULL; /* FPU, and MVE on Armv8.1-M */
    __asm__ volatile("dsb\n isb" ::: "memory");
    init_memory();
    mcu_board_init();
    paint_stack();
    mcu_exit(main());
}

static void put_field(const char *name, uint32_t value)
{
    mcu_puts(name);
    mcu_put_hex32(value);
}

/* Called on the private stack with the faulting SP and EXC_RETURN. */
__attribute__((noreturn)) void mcu_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    mcu_puts("\nMCU-FAULT exception=");
    mcu_put_u64(ipsr & 0x1FF);
    if (frame >= __stack_limit && frame + 8 <= __stack_top) {
        put_field(" pc=", frame[6]);
        put_field(" lr=", frame[5]);
        put_field(" xpsr=", frame[7]);
    } else {
        mcu_puts(" stack-overflow");
    }
    put_field(" sp=", (uint32_t)frame);
    put_field(" exc_return=", exc_return);
    put_field(" cfsr=", SCB_CFSR);
    put_field(" hfsr=", SCB_HFSR);
    put_field(" mmfar=", SCB_MMFAR);
    put_field(" bfar=", SCB_BFAR);
    mcu_puts("\n");
    mcu_exit(EXIT_FAULT);
}

__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "mrs r0, msp\n"
        "mov r1, lr\n"
#ifdef HAS_MSPLIM
        "movs r2, #0\n"
        "msr msplim, r2\n"
#endif
        "movw r2, #:lower16:mcu_fault_stack + 256\n"
        "movt r2, #:upper16:mcu_fault_stack + 256\n"
        "mov sp, r2\n"
        "b mcu_fault_report\n");
}
