/* The console UART, one register layout per family. QEMU ignores the baud divisor and
 * the enable bits (SERIAL.md), so only hardware checks those lines; the data path is the
 * same everywhere. */
#include "board_config.h"
#ifdef MCU_CONSOLE_UART
#include "mcu_uart.h"
#include "mcu_board.h"

#define REG(offset) (*(volatile uint32_t *)(MCU_UART_BASE + (offset)))

#if defined(MCU_UART_CMSDK)
/* Arm CMSDK APB UART (MPS2/MPS3): DATA, STATE, CTRL, BAUDDIV. */
#define UART_DATA REG(0x00)
#define UART_STATE REG(0x04)
#define UART_CTRL REG(0x08)
#define UART_BAUDDIV REG(0x10)
#define STATE_TXFULL (1u << 0)
#define STATE_RXFULL (1u << 1)
#define STATE_TX_OVERRUN (1u << 2)
#define STATE_RX_OVERRUN (1u << 3)
#define CTRL_TXEN_RXEN 0x3u
#define CMSDK_MIN_BAUDDIV 16u

static void setup(void)
{
    uint32_t div = mcu_uart_clock_hz() / MCU_UART_BAUD;
    UART_BAUDDIV = div < CMSDK_MIN_BAUDDIV ? CMSDK_MIN_BAUDDIV : div;
    UART_CTRL = CTRL_TXEN_RXEN;
}

void mcu_uart_putc(uint8_t byte)
{
    while (UART_STATE & STATE_TXFULL)
        ;
    UART_DATA = byte;
}

uint8_t mcu_uart_getc(void)
{
    while (!(UART_STATE & STATE_RXFULL))
        ;
    uint8_t byte = (uint8_t)UART_DATA;
    UART_STATE = STATE_RX_OVERRUN; /* write-one-to-clear: a lost byte shows as a bad CRC */
    return byte;
}

void mcu_uart_drain(void)
{
    while (UART_STATE & STATE_TXFULL)
        ;
}

#else /* STM32 USART / LPUART */
#if defined(MCU_UART_STM32F4)
/* F1/F2/F4 USART: SR, DR, BRR, CR1; SR then DR read clears an overrun. */
#define UART_SR REG(0x00)
#define UART_RX REG(0x04)
#define UART_TX REG(0x04)
#define UART_BRR REG(0x08)
#define UART_CR1 REG(0x0C)
#define CR1_ENABLE ((1u << 13) | (1u << 3) | (1u << 2)) /* UE, TE, RE */
#define clear_overrun() ((void)UART_SR)
#elif defined(MCU_UART_STM32) || defined(MCU_UART_STM32_LPUART)
/* F7/L4/H7/U5 USART and LPUART: CR1, BRR, ISR, ICR, RDR, TDR. */
#define UART_CR1 REG(0x00)
#define UART_BRR REG(0x0C)
#define UART_SR REG(0x1C)
#define UART_ICR REG(0x20)
#define UART_RX REG(0x24)
#define UART_TX REG(0x28)
#define CR1_ENABLE ((1u << 0) | (1u << 3) | (1u << 2)) /* UE, TE, RE */
#define clear_overrun() (UART_ICR = (1u << 3))   /* ORECF */
#else
#error "board_config.h names no UART layout for the UART console"
#endif
#define SR_TXE (1u << 7)
#define SR_TC (1u << 6)
#define SR_RXNE (1u << 5)
#define SR_ORE (1u << 3)

/* USARTDIV with 16x oversampling; an LPUART divides 256 x clock by the baud rate. */
static uint32_t baud_divisor(void)
{
#if defined(MCU_UART_STM32_LPUART)
    return (uint32_t)(((uint64_t)mcu_uart_clock_hz() * 256u + MCU_UART_BAUD / 2) / MCU_UART_BAUD);
#else
    return (mcu_uart_clock_hz() + MCU_UART_BAUD / 2) / MCU_UART_BAUD;
#endif
}

static void setup(void)
{
    mcu_board_uart_init_pins();
    UART_CR1 = 0;
    UART_BRR = baud_divisor();
    UART_CR1 = CR1_ENABLE;
}

void mcu_uart_putc(uint8_t byte)
{
    while (!(UART_SR & SR_TXE))
        ;
    UART_TX = byte;
}

uint8_t mcu_uart_getc(void)
{
    uint32_t sr;
    while (!((sr = UART_SR) & SR_RXNE))
        if (sr & SR_ORE)
            clear_overrun(); /* a lost byte shows as a bad CRC; keep receiving */
    return (uint8_t)UART_RX;
}

void mcu_uart_drain(void)
{
    while (!(UART_SR & SR_TC))
        ;
}
#endif

void mcu_uart_init(void)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
}
#endif /* MCU_CONSOLE_UART */
