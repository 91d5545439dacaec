#include "mcu_io.h"
#include "board_config.h"
#ifdef MCU_CONSOLE_UART
#include "mcu_frame.h"
#include "mcu_uart.h"
#endif

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static char line[128];
static uint32_t used;

__attribute__((unused)) static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#ifdef MCU_CONSOLE_UART
void mcu_console_init(void)
{
    mcu_uart_init();
}

/* Console text travels as TEXT frames, so the host can tell it from results. */
void mcu_flush(void)
{
    if (used == 0)
        return;
    mcu_frame_begin(MCU_FRAME_TEXT, used);
    mcu_frame_write(line, used);
    mcu_frame_end();
    used = 0;
}
#else
void mcu_console_init(void)
{
}

void mcu_flush(void)
{
    if (used == 0)
        return;
    line[used] = '\0';
    semihost(SYS_WRITE0, line);
    used = 0;
}
#endif

/* Buffered so that each semihosting trap carries a whole line (or a large chunk). */
static void put_char(char c)
{
    line[used++] = c;
    if (c == '\n' || used == sizeof(line) - 1)
        mcu_flush();
}

void mcu_puts(const char *s)
{
    while (*s)
        put_char(*s++);
}

void mcu_put_u64(uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        put_char(digits[--n]);
}

static const char hex[] = "0123456789abcdef";

void mcu_put_hex32(uint32_t v)
{
    mcu_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        put_char(hex[(v >> shift) & 0xF]);
}

void mcu_put_hex_bytes(const void *data, uint32_t n)
{
    const uint8_t *p = data;
    for (uint32_t i = 0; i < n; i++) {
        put_char(hex[p[i] >> 4]);
        put_char(hex[p[i] & 0xF]);
    }
}

#if defined(MCU_CONSOLE_UART) && !defined(MCU_SEMIHOSTING_EXIT)
/* A board without a debugger: a semihosting trap would halt or fault, so the firmware
 * sends what it still holds and sleeps; an error was named in its last TEXT frame. */
void mcu_exit(int code)
{
    (void)code;
    mcu_flush();
    mcu_uart_drain();
    for (;;)
        __asm__ volatile("wfi");
}
#else
void mcu_exit(int code)
{
    /* SYS_EXIT_EXTENDED lets a 32-bit target hand QEMU its exit status. */
    static uint32_t block[2];
    mcu_flush();
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    for (;;)
        semihost(SYS_EXIT_EXTENDED, block);
}
#endif
