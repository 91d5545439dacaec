/* Bare-metal Ethos-U55 / Ethos-U85 driver: no heap, no RTOS, no copies, C99.
 *
 * The generated model code describes the board's NPU once (a const mcu_npu_device from the
 * board file's [npu] section), calls mcu_npu_init() once and mcu_npu_run() once per NPU
 * partition, and passes each result to mcu_npu_check(), which prints
 * `MCU-ERROR npu: <cause and fix> (STATUS=0x... QREAD=0x...)` and exits with code 2.
 *
 * The payload is Vela's COP2 driver payload (raw output, --cop-format COP2,
 * --separate-io-regions): a 16-byte "COP2" header, one command-stream entry with a "VEUM"
 * metadata block (the NPU CONFIG and ID words the stream was compiled for, the addressing
 * mode) and the register command stream from byte 64. The driver checks it against the
 * hardware's CONFIG and ID registers before it starts the NPU.
 *
 * Compile-time options (all optional):
 *   MCU_NPU_IRQ=<n>        the vector table (startup.c) routes external interrupt n to
 *                          mcu_npu_irq_handler; mcu_npu_init enables it in the NVIC when
 *                          dev->irq == n, and mcu_npu_run sleeps with WFE until it fires.
 *                          Without it the driver polls STATUS.
 *   MCU_NPU_SECURE=0|1     security state the NPU is reset into (default 1: secure)
 *   MCU_NPU_PRIVILEGED=0|1 privilege level the NPU is reset into (default 1: privileged)
 *   MCU_NPU_RESET_POLLS    bound of the soft-reset wait, in STATUS reads (default 100000)
 *   MCU_NPU_JOB_POLLS      bound of the job wait when polling, in STATUS reads (default 2^28)
 *   MCU_NPU_JOB_WAKES      bound of the job wait when sleeping, in WFE wake-ups (default 64;
 *                          SysTick, which wraps every 2^24 cycles, guarantees the wake-ups)
 *   MCU_NPU_HOST_TEST      route every register access through mcu_npu_hw_read/_write
 *                          (tests/test_npu_driver.py implements them with a fake NPU)
 */
#ifndef MCU_NPU_H
#define MCU_NPU_H
#include <stdint.h>

/* From the board file's [npu] section, generated as a const. */
typedef struct {
    uintptr_t base;            /* register base, e.g. 0x48102000 */
    uint32_t irq;              /* NVIC interrupt number, e.g. 56 */
    uint32_t qconfig;          /* attribute index for command-stream fetches */
    uint8_t region_config[8];  /* attribute index per region (REGIONCFG, 2 bits each) */
    uint32_t axi_limit[4];     /* U55 AXI_LIMIT0-3 values (or U85 MEM_ATTR0-3) */
} mcu_npu_device;

/* One NPU partition. Every region base and the payload must be 16-byte aligned; buffers
 * shared with the CPU should be 32-byte aligned with sizes rounded up to 32 (cache lines). */
typedef struct {
    const uint8_t *payload;           /* Vela's COP2 payload (raw output, separate IO regions) */
    uint32_t payload_bytes;
    uintptr_t region_base[5];         /* 0 read-only (weights), 1 scratch, 2 fast scratch,
                                       * 3 inputs, 4 outputs */
    const void *clean_start;          /* CPU-written inputs to clean from the D-cache before */
    uint32_t clean_bytes;
    void *invalidate_start;           /* NPU-written memory to invalidate after */
    uint32_t invalidate_bytes;
} mcu_npu_job;

typedef enum {
    MCU_NPU_OK = 0,
    MCU_NPU_ABSENT,           /* no NPU answers at dev->base (ID reads 0, e.g. QEMU) */
    MCU_NPU_BAD_PAYLOAD,      /* not a valid COP2 payload, or a misaligned payload/region */
    MCU_NPU_CONFIG_MISMATCH,  /* payload compiled for another NPU configuration */
    MCU_NPU_RESET_TIMEOUT,    /* soft reset did not complete */
    MCU_NPU_PROT_ERROR,       /* NPU did not take the requested security/privilege state */
    MCU_NPU_JOB_ERROR,        /* the NPU reported a fault, or stopped before the stream end */
    MCU_NPU_TIMEOUT           /* the job did not finish within the wait bound */
} mcu_npu_status;

/* Checks the product, soft-resets the NPU (bounded wait), checks PROT, writes the AXI limits
 * (U55) or MEM_ATTR entries (U85) and, with MCU_NPU_IRQ, enables the interrupt. */
mcu_npu_status mcu_npu_init(const mcu_npu_device *dev);

/* Validates the payload against the hardware, cleans the inputs from the D-cache, programs
 * the queue and base pointers, runs the stream and waits for it (bounded), checks STATUS
 * (soft reset on failure) and invalidates the outputs. */
mcu_npu_status mcu_npu_run(const mcu_npu_device *dev, const mcu_npu_job *job);

/* One line naming the cause and the fix. */
const char *mcu_npu_status_text(mcu_npu_status s);

/* On error prints `MCU-ERROR npu: <text> (STATUS=0x... QREAD=0x...)` and exits with code 2;
 * STATUS and QREAD are the values read when the error was detected. */
void mcu_npu_check(mcu_npu_status s);

/* The NPU interrupt handler (vector 16 + MCU_NPU_IRQ). */
void mcu_npu_irq_handler(void);

#ifdef MCU_NPU_HOST_TEST
/* Implemented by the host test: every register access (NPU, SCB, NVIC, SysTick) by address. */
uint32_t mcu_npu_hw_read(uintptr_t addr);
void mcu_npu_hw_write(uintptr_t addr, uint32_t value);
#endif

#endif
