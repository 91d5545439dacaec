#include "board_config.h"
#ifdef MCU_CONSOLE_UART
#include "mcu_frame.h"
#include "mcu_uart.h"

#define CRC32_POLY_REFLECTED 0xEDB88320u

static uint32_t tx_crc, rx_crc;

/* Bitwise CRC-32: no 1 KiB table in flash; frames are short next to an inference. */
static uint32_t crc32_byte(uint32_t crc, uint8_t byte)
{
    crc ^= byte;
    for (int bit = 0; bit < 8; bit++)
        crc = (crc >> 1) ^ (CRC32_POLY_REFLECTED & (0u - (crc & 1u)));
    return crc;
}

static void put(uint8_t byte)
{
    tx_crc = crc32_byte(tx_crc, byte);
    mcu_uart_putc(byte);
}

void mcu_frame_write(const void *data, uint32_t n)
{
    const uint8_t *p = data;
    for (uint32_t i = 0; i < n; i++)
        put(p[i]);
}

void mcu_frame_write_u32(uint32_t v)
{
    for (int shift = 0; shift < 32; shift += 8)
        put((uint8_t)(v >> shift));
}

void mcu_frame_write_u64(uint64_t v)
{
    mcu_frame_write_u32((uint32_t)v);
    mcu_frame_write_u32((uint32_t)(v >> 32));
}

void mcu_frame_begin(uint8_t type, uint32_t length)
{
    mcu_uart_init();
    mcu_uart_putc(MCU_FRAME_START);
    tx_crc = 0xFFFFFFFFu;
    put(type);
    mcu_frame_write_u32(length);
}

void mcu_frame_end(void)
{
    uint32_t crc = ~tx_crc;
    for (int shift = 0; shift < 32; shift += 8)
        mcu_uart_putc((uint8_t)(crc >> shift));
}

static uint8_t get(void)
{
    uint8_t byte = mcu_uart_getc();
    rx_crc = crc32_byte(rx_crc, byte);
    return byte;
}

void mcu_frame_read(void *data, uint32_t n)
{
    uint8_t *p = data;
    for (uint32_t i = 0; i < n; i++)
        p[i] = get();
}

uint32_t mcu_frame_read_u32(void)
{
    uint32_t v = 0;
    for (int shift = 0; shift < 32; shift += 8)
        v |= (uint32_t)get() << shift;
    return v;
}

void mcu_frame_skip(uint32_t n)
{
    while (n--)
        (void)get();
}

/* Bytes before a start byte (line noise, a half frame) are dropped. */
void mcu_frame_receive(mcu_frame_header *header)
{
    mcu_uart_init();
    while (mcu_uart_getc() != MCU_FRAME_START)
        ;
    rx_crc = 0xFFFFFFFFu;
    header->type = get();
    header->length = mcu_frame_read_u32();
}

int mcu_frame_finish(void)
{
    uint32_t expected = ~rx_crc;
    uint32_t sent = 0;
    for (int shift = 0; shift < 32; shift += 8)
        sent |= (uint32_t)mcu_uart_getc() << shift;
    return sent == expected;
}
#endif /* MCU_CONSOLE_UART */
