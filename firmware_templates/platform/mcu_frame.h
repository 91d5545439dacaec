/* Framed binary messages over the console UART, both ways:
 *   0xA5 | type (1 byte) | payload length (4 bytes, little-endian) | payload | CRC-32
 * The CRC-32 (IEEE 802.3, as zlib.crc32) covers type, length and payload and is sent
 * little-endian. Multi-byte payload fields are little-endian. The host side is
 * mcu_compile/device/frames.py; keep the two in step. */
#ifndef MCU_FRAME_H
#define MCU_FRAME_H
#include <stdint.h>

#define MCU_FRAME_START 0xA5u

/* Firmware -> host */
#define MCU_FRAME_TEXT 0x01u   /* console text (protocol lines, errors, fault reports) */
#define MCU_FRAME_READY 0x02u  /* u32 nonce, u32 flags, u64 timer overhead, u32 inputs, u32 outputs,
                                  u32 size per input, u32 size per output */
#define MCU_FRAME_OUTPUT 0x03u /* u32 vector, u32 output index, the output's bytes */
#define MCU_FRAME_RESULT 0x04u /* u32 vector, i32 status, u64 ticks, u32 stack high-water bytes */
#define MCU_FRAME_DONE 0x05u   /* u32 stack high-water bytes: the firmware exits next */
#define MCU_FRAME_NACK 0x06u   /* u32 reason (below): the host's last frame was refused */

/* Host -> firmware */
#define MCU_FRAME_PING 0x10u   /* u32 nonce: answered with READY carrying it */
#define MCU_FRAME_INPUT 0x11u  /* u32 input index, the input's bytes */
#define MCU_FRAME_INVOKE 0x12u /* u32 vector number to report the results under */
#define MCU_FRAME_QUIT 0x13u   /* no payload: DONE, then exit */

#define MCU_READY_SEMIHOSTING_EXIT 0x1u /* READY flag: QUIT ends the simulation */

#define MCU_NACK_CHECKSUM 1u /* CRC-32 differs: the frame was damaged on the way */
#define MCU_NACK_SIZE 2u     /* payload length wrong for its type or input */
#define MCU_NACK_INDEX 3u    /* no such input */
#define MCU_NACK_TYPE 4u     /* unknown frame type */

void mcu_frame_begin(uint8_t type, uint32_t length);
void mcu_frame_write(const void *data, uint32_t n);
void mcu_frame_write_u32(uint32_t v);
void mcu_frame_write_u64(uint64_t v);
void mcu_frame_end(void);

/* A received frame's header; its payload is read with mcu_frame_read*() and closed with
 * mcu_frame_finish(), which checks the CRC-32. */
typedef struct {
    uint8_t type;
    uint32_t length;
} mcu_frame_header;

void mcu_frame_receive(mcu_frame_header *header);
void mcu_frame_read(void *data, uint32_t n);
uint32_t mcu_frame_read_u32(void);
void mcu_frame_skip(uint32_t n);
/* 1 when the CRC-32 of the received frame matched. */
int mcu_frame_finish(void);

#endif
