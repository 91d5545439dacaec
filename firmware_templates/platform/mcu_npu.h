/* Bare-metal Ethos-U55 / Ethos-U85 driver: no heap, no RTOS, no copies, C99.
 *
 * The generated model code describes the board's NPU once (a const mcu_npu_device from the
 * board file's [npu] section), calls mcu_npu_init() once and mcu_npu_run() once per NPU
 * partition, and returns a failure to its caller as the model's NPU error status; the
 * caller gets the cause as one line from mcu_npu_error_text() (through the model's
 * <name>_status_text()). A harness that should stop at the first error may instead pass
 * each result to mcu_npu_check(), which prints `MCU-ERROR npu: <cause and fix>
 * (STATUS=0x... QREAD=0x...)` and exits with code 2.
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
 *   MCU_NPU_NO_CONSOLE     leave out mcu_npu_check(), the one function that prints and exits
 *                          (through mcu_io.h): the driver then needs nothing from the firmware
 *                          around it (a model library in the user's own firmware)
 *
 * Co-simulation (mcu_compile/cosim.py): QEMU's mps3-an547 runs the firmware and models no NPU;
 * the host executes each job with a functional model of the Ethos-U against the firmware's
 * own memory, through QEMU's gdbstub. The image holds mcu_npu_cosim.enabled = 0: the driver
 * then talks to the hardware exactly as without the hook. The host stops at main() (after
 * .data/.bss are initialised) and writes enabled = 1 with the CONFIG and ID of the board's
 * NPU (the one the firmware was compiled for), which the driver then reads instead of the
 * registers: init succeeds, and the payload checks compare the payload with the board's NPU.
 * Every register write still happens (QEMU ignores them); STATUS, PROT, QREAD and CMD reads
 * come from a register shadow that follows the writes (RESET, CMD) as the hardware would.
 * At its wait point the driver calls mcu_npu_cosim_wait() instead of polling STATUS: the
 * host breaks there, runs the job, writes the STATUS the job ended with into
 * mcu_npu_cosim.status and lets the CPU continue.
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
    uint32_t region_bytes[5];         /* bytes of each region (0: none or unknown): what a
                                       * co-simulating host reads and writes back */
} mcu_npu_job;
/* mcu_compile/cosim.py reads jobs out of target memory with this layout (32-bit targets):
 * payload 0, payload_bytes 4, region_base 8, clean 28/32, invalidate 36/40, region_bytes 44;
 * 64 bytes in all. */

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

/* `npu: <mcu_npu_status_text(s)> (STATUS=0x... QREAD=0x...)`, STATUS and QREAD as read when
 * the last error was detected; in a static buffer, valid until the next call. */
const char *mcu_npu_error_text(mcu_npu_status s);

#ifndef MCU_NPU_NO_CONSOLE
/* On error prints `MCU-ERROR npu: <text> (STATUS=0x... QREAD=0x...)` and exits with code 2;
 * STATUS and QREAD are the values read when the error was detected. */
void mcu_npu_check(mcu_npu_status s);
#endif

/* The NPU interrupt handler (vector 16 + MCU_NPU_IRQ). */
void mcu_npu_irq_handler(void);

/* Co-simulation state (see the top of this file), written by the host through the gdbstub.
 * Layout (32-bit targets, read by mcu_compile/cosim.py): enabled 0, config 4, id 8,
 * status 12, qread 16, job 20, jobs 24; 28 bytes. */
typedef struct {
    uint32_t enabled;  /* 0 in the image; 1: the host models the NPU */
    uint32_t config;   /* CONFIG and ID of the modelled NPU: the board's NPU */
    uint32_t id;
    uint32_t status;   /* STATUS at the end of the current job (the host writes it) */
    uint32_t qread;    /* QREAD at the end of the current job (the host writes it) */
    uintptr_t job;     /* the job being waited for (also the hook's second argument) */
    uint32_t jobs;     /* jobs started */
} mcu_npu_cosim_state;

extern volatile mcu_npu_cosim_state mcu_npu_cosim;

/* The co-simulation wait point: called (never inlined, arguments as in the AAPCS) once the
 * job is started, instead of the STATUS polling. The host breaks at its first instruction,
 * runs the job and writes mcu_npu_cosim.status; it returns that status. */
uint32_t mcu_npu_cosim_wait(const mcu_npu_device *dev, const mcu_npu_job *job);

#ifdef MCU_NPU_HOST_TEST
/* Implemented by the host test: every register access (NPU, SCB, NVIC, SysTick) by address,
 * and the host side of the co-simulation wait point. */
uint32_t mcu_npu_hw_read(uintptr_t addr);
void mcu_npu_hw_write(uintptr_t addr, uint32_t value);
void mcu_npu_hw_cosim_wait(const mcu_npu_device *dev, const mcu_npu_job *job);
#endif

#endif
