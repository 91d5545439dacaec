/* Bare-metal Ethos-U55 / Ethos-U85 driver (see mcu_npu.h). No heap, no RTOS, no copies, C99.
 *
 * Register layout and bit positions: Arm's Ethos-U register interface as shipped in Vela 5.2
 * (regor/architecture/ethosu65/ethos_u65_interface.hpp, which the U55 generator uses, and
 * regor/architecture/ethosu85/ethos_u85_interface.hpp). COP2 layout: regor's
 * tflite/custom_operator_ethosu.hpp (DriverActions::CreateDriverPayload2). */
#include "mcu_npu.h"
#ifndef MCU_NPU_NO_CONSOLE
#include "mcu_io.h"
#endif

#ifndef MCU_NPU_SECURE
#define MCU_NPU_SECURE 1
#endif
#ifndef MCU_NPU_PRIVILEGED
#define MCU_NPU_PRIVILEGED 1
#endif
#ifndef MCU_NPU_RESET_POLLS
#define MCU_NPU_RESET_POLLS 100000u
#endif
#ifndef MCU_NPU_JOB_POLLS
#define MCU_NPU_JOB_POLLS (1u << 28)
#endif
#ifndef MCU_NPU_JOB_WAKES
#define MCU_NPU_JOB_WAKES 64u
#endif

#define EXIT_ERROR 2

/* ---- NPU registers (offsets from dev->base; U55 and U85 unless noted) ---- */
#define REG_ID 0x000u
#define REG_STATUS 0x004u
#define REG_CMD 0x008u
#define REG_RESET 0x00Cu
#define REG_QBASE 0x010u
#define REG_QBASE_HI 0x014u /* U85 (40-bit addresses) */
#define REG_QREAD 0x018u
#define REG_QCONFIG 0x01Cu
#define REG_QSIZE 0x020u
#define REG_PROT 0x024u
#define REG_CONFIG 0x028u
#define REG_REGIONCFG 0x03Cu
#define REG_AXI_LIMIT(n) (0x040u + 4u * (n)) /* U55 AXI_LIMIT0-3, U85 MEM_ATTR0-3 */
#define REG_BASEP(n) (0x080u + 8u * (n))
#define REG_BASEP_HI(n) (0x084u + 8u * (n)) /* U85 */

/* STATUS */
#define STATUS_RUNNING (1u << 0)          /* state: 1 running, 0 stopped */
#define STATUS_IRQ_RAISED (1u << 1)
#define STATUS_BUS_ERROR (1u << 2)        /* bus_status */
#define STATUS_RESET (1u << 3)            /* reset_status: reset in progress */
#define STATUS_PARSE_ERROR (1u << 4)      /* cmd_parse_error */
#define STATUS_CMD_END (1u << 5)          /* cmd_end_reached */
#define STATUS_WD_FAULT_U55 (1u << 7)     /* U55 wd_fault (reserved on U85) */
#define STATUS_ECC_FAULT (1u << 8)
#define STATUS_BRANCH_FAULT_U85 (1u << 9) /* U85 branch_fault */
#define STATUS_ERRORS_U55 (STATUS_BUS_ERROR | STATUS_PARSE_ERROR | STATUS_WD_FAULT_U55 | STATUS_ECC_FAULT)
#define STATUS_ERRORS_U85 (STATUS_BUS_ERROR | STATUS_PARSE_ERROR | STATUS_ECC_FAULT | STATUS_BRANCH_FAULT_U85)

/* CMD */
#define CMD_RUN 1u                  /* transition_to_running_state */
#define CMD_CLEAR_IRQ 2u
#define CMD_KEEP 0xCu               /* clock_q_enable, power_q_enable */

/* RESET (pending_CPL bit 0, pending_CSL bit 1) and PROT (active_CPL, active_CSL): same layout.
 * CPL 1 = privileged; CSL 0 = secure, 1 = non-secure. */
#define PROT_WORD ((MCU_NPU_PRIVILEGED ? 1u : 0u) | (MCU_NPU_SECURE ? 0u : 2u))
#define PROT_MASK 3u

/* CONFIG */
#define CONFIG_MACS(c) ((c) & 0xFu)                /* log2 of MACs per cycle */
#define CONFIG_STREAM_VERSION(c) (((c) >> 4) & 0xFu)
#define CONFIG_U55_SHRAM(c) (((c) >> 8) & 0xFFu)   /* KiB */
#define CONFIG_U85_AXI(c) (((c) >> 8) & 0x7u)      /* num_axi_sram (2 bits), num_axi_ext */
#define CONFIG_CUSTOM_DMA (1u << 27)
#define CONFIG_PRODUCT(c) ((c) >> 28)
#define PRODUCT_U55 0u
#define PRODUCT_U85 2u

/* ID */
#define ID_ARCH_MAJOR(i) ((i) >> 28)
#define ID_ARCH_MINOR(i) (((i) >> 20) & 0xFFu)

/* ---- Cortex-M system registers ---- */
#define SYST_CSR 0xE000E010u
#define SYST_ENABLE 1u
#define SYST_ENABLE_TICKINT 3u
#define NVIC_ISER 0xE000E100u
#define NVIC_ICER 0xE000E180u
#define NVIC_ICPR 0xE000E280u
#define NVIC_IRQ_LIMIT 480u
#define SCB_CCR 0xE000ED14u
#define CCR_DC (1u << 16) /* data cache enabled */
#define SCB_DCIMVAC 0xE000EF5Cu  /* invalidate by address */
#define SCB_DCCMVAC 0xE000EF68u  /* clean by address */
#define SCB_DCCIMVAC 0xE000EF70u /* clean and invalidate by address */
#define DCACHE_LINE 32u

/* ---- COP2 payload (all words little-endian) ----
 *  0 "COP2"  4 u16 major 1, u16 minor  8 u64 bytes after the header
 * 16 u32 entry type (1 = command stream)  20 u32 entry data bytes
 * 24 u32 metadata bytes (from 28 up to the stream)  28 "VEUM"  32 u16 major 1, u16 minor
 * 36 u32 metadata data bytes  40 CONFIG  44 ID  48 addressing (1 network-wide, 2 separate IO)
 * 52 u64 fast-scratch bytes  then 0xFF padding to 16 bytes: the register stream (byte 64) */
#define COP2_HEADER 16u
#define COP2_ENTRY_COMMAND_STREAM 1u
#define COP2_META_START 28u
#define COP2_META_HEADER 12u
#define COP2_META_MIN_DATA 12u /* CONFIG, ID, addressing */
#define COP2_ADDR_NETWORK 1u
#define COP2_ADDR_SEPARATE_IO 2u
#define NPU_ALIGN 16u

#ifdef MCU_NPU_HOST_TEST
void mcu_npu_hw_wfe(void);
#define HW_READ(addr) mcu_npu_hw_read(addr)
#define HW_WRITE(addr, v) mcu_npu_hw_write((addr), (v))
#define BARRIER() ((void)0)
#define WAIT_FOR_EVENT() mcu_npu_hw_wfe()
#define SEND_EVENT() ((void)0)
#define IRQS_MASKED() 0u
#else
static inline uint32_t hw_read(uintptr_t addr)
{
    return *(volatile const uint32_t *)addr;
}
static inline void hw_write(uintptr_t addr, uint32_t v)
{
    *(volatile uint32_t *)addr = v;
}
static inline uint32_t primask(void)
{
    uint32_t v;
    __asm__ volatile("mrs %0, primask" : "=r"(v));
    return v;
}
#define HW_READ(addr) hw_read(addr)
#define HW_WRITE(addr, v) hw_write((addr), (v))
#define BARRIER() __asm__ volatile("dsb 0xF\n isb 0xF" ::: "memory")
#define WAIT_FOR_EVENT() __asm__ volatile("wfe" ::: "memory")
#define SEND_EVENT() __asm__ volatile("sev" ::: "memory")
#define IRQS_MASKED() (primask() & 1u)
#endif

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define NOT_INLINED __attribute__((noinline, noipa)) /* keeps the AAPCS arguments */
#else
#define NOT_INLINED __attribute__((noinline))
#endif

/* The layouts mcu_compile/cosim.py reads out of target memory (mcu_npu.h). */
typedef char mcu_npu_cosim_layout_check[(sizeof(void *) != 4 || (sizeof(mcu_npu_job) == 64 &&
                                          sizeof(mcu_npu_cosim_state) == 28)) ? 1 : -1];

/* Co-simulation (mcu_npu.h): 0 in the image, written by the host through the gdbstub. */
volatile mcu_npu_cosim_state mcu_npu_cosim;

/* Register shadow of the modelled NPU, co-simulation only; STATUS and QREAD live in
 * mcu_npu_cosim, where the host writes them. */
static uint32_t cosim_prot, cosim_cmd = CMD_KEEP;

static uint32_t npu_read(const mcu_npu_device *dev, uint32_t reg)
{
    if (!mcu_npu_cosim.enabled)
        return HW_READ(dev->base + reg);
    switch (reg) {
    case REG_ID:
        return mcu_npu_cosim.id;
    case REG_CONFIG:
        return mcu_npu_cosim.config;
    case REG_STATUS:
        return mcu_npu_cosim.status;
    case REG_QREAD:
        return mcu_npu_cosim.qread;
    case REG_PROT:
        return cosim_prot;
    case REG_CMD:
        return cosim_cmd;
    default:
        return 0;
    }
}

/* Every write goes to the hardware; under co-simulation the shadow follows it. */
static void npu_write(const mcu_npu_device *dev, uint32_t reg, uint32_t v)
{
    HW_WRITE(dev->base + reg, v);
    if (!mcu_npu_cosim.enabled)
        return;
    if (reg == REG_RESET) { /* the model resets at once, into the requested state */
        cosim_prot = v & PROT_MASK;
        cosim_cmd = CMD_KEEP;
        mcu_npu_cosim.status = 0;
        mcu_npu_cosim.qread = 0;
    } else if (reg == REG_CMD) {
        cosim_cmd = v & CMD_KEEP;
        if (v & CMD_CLEAR_IRQ)
            mcu_npu_cosim.status &= ~STATUS_IRQ_RAISED;
        if (v & CMD_RUN) /* running until the host writes the status the job ended with */
            mcu_npu_cosim.status = STATUS_RUNNING;
    }
}

#define RD(dev, reg) npu_read((dev), (reg))
#define WR(dev, reg, v) npu_write((dev), (reg), (v))

#define NO_IRQ 0xFFFFFFFFu

static volatile uint32_t irq_seen;
static volatile uint32_t irq_line = NO_IRQ; /* NVIC line the handler masks */
static uint32_t last_status, last_qread;

typedef struct {
    uint32_t config, id, addressing;
    uint32_t stream_offset, stream_bytes;
} cop2_info;

static void record(const mcu_npu_device *dev)
{
    last_status = RD(dev, REG_STATUS);
    last_qread = RD(dev, REG_QREAD);
}

static mcu_npu_status fail(const mcu_npu_device *dev, mcu_npu_status s)
{
    record(dev);
    return s;
}

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

static int is_fourcc(const uint8_t *p, const char *s)
{
    return p[0] == (uint8_t)s[0] && p[1] == (uint8_t)s[1] && p[2] == (uint8_t)s[2] &&
           p[3] == (uint8_t)s[3];
}

/* Every length is checked against the one before it, so no sum can overflow. */
static int parse_cop2(const uint8_t *p, uint32_t n, cop2_info *out)
{
    if (!p || ((uintptr_t)p & (NPU_ALIGN - 1)) || n < COP2_META_START + COP2_META_HEADER)
        return 0;
    if (!is_fourcc(p, "COP2") || le16(p + 4) != 1)
        return 0;
    uint32_t rest = le32(p + 8);
    if (le32(p + 12) != 0 || rest > n - COP2_HEADER)
        return 0;
    uint32_t total = COP2_HEADER + rest;
    if (total < COP2_META_START + COP2_META_HEADER || le32(p + 16) != COP2_ENTRY_COMMAND_STREAM)
        return 0;
    uint32_t entry = le32(p + 20);
    if (entry > total - 24 || entry < 4)
        return 0;
    uint32_t meta = le32(p + 24);
    if (meta > entry - 4 || meta < COP2_META_HEADER + COP2_META_MIN_DATA)
        return 0;
    if (!is_fourcc(p + COP2_META_START, "VEUM") || le16(p + 32) != 1)
        return 0;
    uint32_t meta_data = le32(p + 36);
    if (meta_data < COP2_META_MIN_DATA || meta_data > meta - COP2_META_HEADER)
        return 0;
    out->config = le32(p + 40);
    out->id = le32(p + 44);
    out->addressing = le32(p + 48);
    out->stream_offset = COP2_META_START + meta;
    out->stream_bytes = entry - 4 - meta;
    if (out->addressing != COP2_ADDR_SEPARATE_IO && out->addressing != COP2_ADDR_NETWORK)
        return 0;
    return (out->stream_offset & (NPU_ALIGN - 1)) == 0 && out->stream_bytes != 0 &&
           (out->stream_bytes & 3) == 0;
}

/* The checks of Arm's driver: product, MACs, stream version, custom DMA, SHRAM (U55) or AXI
 * ports (U85) equal; architecture major equal and the hardware's minor at least the payload's. */
static int config_matches(uint32_t hw, uint32_t want, uint32_t hw_id, uint32_t want_id)
{
    if (ID_ARCH_MAJOR(hw_id) != ID_ARCH_MAJOR(want_id) || ID_ARCH_MINOR(hw_id) < ID_ARCH_MINOR(want_id))
        return 0;
    if (hw == want)
        return 1;
    if (CONFIG_PRODUCT(hw) != CONFIG_PRODUCT(want) || CONFIG_MACS(hw) != CONFIG_MACS(want) ||
        CONFIG_STREAM_VERSION(hw) != CONFIG_STREAM_VERSION(want))
        return 0;
    if ((want & CONFIG_CUSTOM_DMA) && !(hw & CONFIG_CUSTOM_DMA))
        return 0;
    if (CONFIG_PRODUCT(hw) == PRODUCT_U55)
        return CONFIG_U55_SHRAM(hw) == CONFIG_U55_SHRAM(want);
    return CONFIG_U85_AXI(hw) == CONFIG_U85_AXI(want);
}

/* No NPU answers: QEMU's mps3-an547 maps the NPU window as an unimplemented device that reads 0;
 * an absent or unclocked bus slave may also read all ones. */
static int npu_absent(uint32_t id)
{
    return id == 0u || id == 0xFFFFFFFFu;
}

static int product_supported(uint32_t config)
{
    return CONFIG_PRODUCT(config) == PRODUCT_U55 || CONFIG_PRODUCT(config) == PRODUCT_U85;
}

/* Soft reset into the configured security/privilege state, then the AXI set-up that the
 * reset cleared: U55 AXI_LIMIT0-3 or U85 MEM_ATTR0-3 (same offsets). */
static mcu_npu_status soft_reset(const mcu_npu_device *dev)
{
    WR(dev, REG_RESET, PROT_WORD);
    uint32_t status = RD(dev, REG_STATUS);
    for (uint32_t i = 0; (status & STATUS_RESET) && i < MCU_NPU_RESET_POLLS; i++)
        status = RD(dev, REG_STATUS);
    if (status & STATUS_RESET)
        return fail(dev, MCU_NPU_RESET_TIMEOUT);
    if ((RD(dev, REG_PROT) & PROT_MASK) != PROT_WORD)
        return fail(dev, MCU_NPU_PROT_ERROR);
    for (uint32_t i = 0; i < 4; i++)
        WR(dev, REG_AXI_LIMIT(i), dev->axi_limit[i]);
    return MCU_NPU_OK;
}

/* The interrupt is used when the vector table routes it here (MCU_NPU_IRQ), and a WFE sleep is
 * sure to wake up again even if the NPU never finishes: interrupts unmasked and SysTick
 * running with its interrupt (mcu_timer.c), which wraps every 2^24 cycles. */
static int use_irq(const mcu_npu_device *dev)
{
#ifdef MCU_NPU_IRQ
    return dev->irq == (uint32_t)(MCU_NPU_IRQ) && irq_line == dev->irq && !IRQS_MASKED() &&
           (HW_READ(SYST_CSR) & SYST_ENABLE_TICKINT) == SYST_ENABLE_TICKINT;
#else
    (void)dev;
    return 0;
#endif
}

static void nvic(uint32_t reg, uint32_t irq)
{
    HW_WRITE(reg + 4u * (irq / 32u), 1u << (irq % 32u));
}

void mcu_npu_irq_handler(void)
{
    uint32_t line = irq_line;
    if (line != NO_IRQ)
        nvic(NVIC_ICER, line); /* the NPU holds its level interrupt until mcu_npu_run clears it */
    irq_seen = 1;
    SEND_EVENT(); /* wakes the WFE even if the interrupt came just before it */
}

mcu_npu_status mcu_npu_init(const mcu_npu_device *dev)
{
    if (!dev)
        return MCU_NPU_ABSENT;
    if (npu_absent(RD(dev, REG_ID)))
        return fail(dev, MCU_NPU_ABSENT);
    if (!product_supported(RD(dev, REG_CONFIG)))
        return fail(dev, MCU_NPU_CONFIG_MISMATCH);
    mcu_npu_status s = soft_reset(dev);
    if (s != MCU_NPU_OK)
        return s;
#ifdef MCU_NPU_IRQ
    if (dev->irq == (uint32_t)(MCU_NPU_IRQ) && dev->irq < NVIC_IRQ_LIMIT) {
        nvic(NVIC_ICER, dev->irq);
        nvic(NVIC_ICPR, dev->irq);
        irq_line = dev->irq;
        nvic(NVIC_ISER, dev->irq);
    }
#endif
    return MCU_NPU_OK;
}

/* Whole 32-byte lines covering [start, start + bytes). */
static void dcache_range(uintptr_t op, const void *start, uint32_t bytes)
{
    if (!start || !bytes)
        return;
    uintptr_t end = (uintptr_t)start + bytes;
    for (uintptr_t a = (uintptr_t)start & ~(uintptr_t)(DCACHE_LINE - 1); a < end; a += DCACHE_LINE)
        HW_WRITE(op, (uint32_t)a);
}

static int regions_aligned(const mcu_npu_job *job)
{
    for (uint32_t i = 0; i < 5; i++)
        if (job->region_base[i] & (NPU_ALIGN - 1))
            return 0;
    return 1;
}

static int job_done(uint32_t status, uint32_t errors)
{
    return (status & (STATUS_IRQ_RAISED | errors)) ||
           (!(status & STATUS_RUNNING) && (status & STATUS_CMD_END));
}

/* Bounded wait for the end of the stream; returns 0 on timeout. */
static int wait_job(const mcu_npu_device *dev, uint32_t errors, int irq)
{
    if (irq) {
        for (uint32_t wakes = 0;; wakes++) {
            if (irq_seen || job_done(RD(dev, REG_STATUS), errors))
                return 1;
            if (wakes >= MCU_NPU_JOB_WAKES)
                return 0;
            WAIT_FOR_EVENT();
        }
    }
    for (uint32_t polls = 0; polls < MCU_NPU_JOB_POLLS; polls++)
        if (job_done(RD(dev, REG_STATUS), errors))
            return 1;
    return 0;
}

NOT_INLINED uint32_t mcu_npu_cosim_wait(const mcu_npu_device *dev, const mcu_npu_job *job)
{
#ifdef MCU_NPU_HOST_TEST
    mcu_npu_hw_cosim_wait(dev, job);
#else
    (void)dev;
    (void)job;
#endif
    return mcu_npu_cosim.status;
}

/* Co-simulation: the host runs the job while the CPU stands at mcu_npu_cosim_wait. A status
 * the host did not write (still "running") counts as a timeout. SysTick is paused meanwhile:
 * while the debugger holds the CPU, QEMU -icount advances its virtual clock towards the next
 * timer deadline, which would count host time as CPU time; with no timer running it stands
 * still, and the job costs the measured CPU time only the driver's own instructions. */
static int cosim_wait_job(const mcu_npu_device *dev, const mcu_npu_job *job, uint32_t errors)
{
    uint32_t systick = HW_READ(SYST_CSR);
    HW_WRITE(SYST_CSR, systick & ~SYST_ENABLE);
    mcu_npu_cosim.job = (uintptr_t)job;
    mcu_npu_cosim.jobs++;
    uint32_t status = mcu_npu_cosim_wait(dev, job);
    HW_WRITE(SYST_CSR, systick);
    return job_done(status, errors);
}

/* After a job with the interrupt enabled: the handler masked the line; clear what is pending
 * (after the NPU dropped its level) and unmask it for the next job. */
static void rearm_irq(int irq)
{
    if (irq) {
        nvic(NVIC_ICPR, irq_line);
        nvic(NVIC_ISER, irq_line);
    }
}

mcu_npu_status mcu_npu_run(const mcu_npu_device *dev, const mcu_npu_job *job)
{
    if (!dev)
        return MCU_NPU_ABSENT;
    uint32_t id = RD(dev, REG_ID);
    if (npu_absent(id))
        return fail(dev, MCU_NPU_ABSENT);
    cop2_info info;
    if (!job || !parse_cop2(job->payload, job->payload_bytes, &info) || !regions_aligned(job))
        return fail(dev, MCU_NPU_BAD_PAYLOAD);
    uint32_t config = RD(dev, REG_CONFIG);
    if (!product_supported(config) || !config_matches(config, info.config, id, info.id))
        return fail(dev, MCU_NPU_CONFIG_MISMATCH);
    int u85 = CONFIG_PRODUCT(config) == PRODUCT_U85;
    uint32_t errors = u85 ? STATUS_ERRORS_U85 : STATUS_ERRORS_U55;

    /* The NPU reads the inputs from memory: write back the CPU's dirty lines. Clean and
     * invalidate the outputs too, so that no dirty line is evicted over the NPU's results. */
    int dcache = (HW_READ(SCB_CCR) & CCR_DC) != 0;
    BARRIER();
    if (dcache) {
        dcache_range(SCB_DCCMVAC, job->clean_start, job->clean_bytes);
        dcache_range(SCB_DCCIMVAC, job->invalidate_start, job->invalidate_bytes);
        BARRIER();
    }

    uint64_t qbase = (uint64_t)((uintptr_t)job->payload + info.stream_offset);
    WR(dev, REG_QBASE, (uint32_t)qbase);
    if (u85)
        WR(dev, REG_QBASE_HI, (uint32_t)(qbase >> 32));
    WR(dev, REG_QSIZE, info.stream_bytes);
    WR(dev, REG_QCONFIG, dev->qconfig);
    for (uint32_t i = 0; i < 5; i++) {
        uint64_t base = (uint64_t)job->region_base[i];
        WR(dev, REG_BASEP(i), (uint32_t)base);
        if (u85)
            WR(dev, REG_BASEP_HI(i), (uint32_t)(base >> 32));
    }
    uint32_t regioncfg = 0;
    for (uint32_t i = 0; i < 8; i++)
        regioncfg |= (uint32_t)(dev->region_config[i] & 3u) << (2u * i);
    WR(dev, REG_REGIONCFG, regioncfg);

    int cosim = mcu_npu_cosim.enabled != 0;
    int irq = !cosim && use_irq(dev);
    irq_seen = 0;
    BARRIER();
    WR(dev, REG_CMD, (RD(dev, REG_CMD) & CMD_KEEP) | CMD_RUN);

    if (!(cosim ? cosim_wait_job(dev, job, errors) : wait_job(dev, errors, irq))) {
        record(dev);
        soft_reset(dev);
        rearm_irq(irq);
        return MCU_NPU_TIMEOUT;
    }
    WR(dev, REG_CMD, (RD(dev, REG_CMD) & CMD_KEEP) | CMD_CLEAR_IRQ);
    rearm_irq(irq);
    uint32_t status = RD(dev, REG_STATUS);
    if ((status & errors) || !(status & STATUS_CMD_END)) {
        record(dev);
        soft_reset(dev);
        return MCU_NPU_JOB_ERROR;
    }

    BARRIER();
    if (dcache) {
        dcache_range(SCB_DCIMVAC, job->invalidate_start, job->invalidate_bytes);
        BARRIER();
    }
    return MCU_NPU_OK;
}

const char *mcu_npu_status_text(mcu_npu_status s)
{
    switch (s) {
    case MCU_NPU_OK:
        return "no error";
    case MCU_NPU_ABSENT:
        return "NPU not found: its ID register at the board's [npu] base reads 0 (QEMU models no "
               "Ethos-U); run this firmware on the board's FVP or hardware, or fix [npu] base";
    case MCU_NPU_BAD_PAYLOAD:
        return "invalid NPU payload: not a Vela COP2 payload (raw output, --cop-format COP2), or "
               "the payload or a region base is not 16-byte aligned; regenerate the model";
    case MCU_NPU_CONFIG_MISMATCH:
        return "NPU configuration mismatch: the command stream was compiled for another Ethos-U "
               "(product, MACs, SHRAM/AXI ports or architecture version); compile for the "
               "board's [npu] vela_accelerator, or give the FVP the same num_macs";
    case MCU_NPU_RESET_TIMEOUT:
        return "NPU soft reset timed out (STATUS.reset_status stayed set); check the NPU's "
               "clock and power and the board's [npu] base";
    case MCU_NPU_PROT_ERROR:
        return "NPU did not take the requested security/privilege state after reset (PROT); run "
               "the firmware secure and privileged, or build with matching MCU_NPU_SECURE and "
               "MCU_NPU_PRIVILEGED";
    case MCU_NPU_JOB_ERROR:
        return "NPU job failed (bus error, command-stream parse error, watchdog/branch or ECC "
               "fault, or stopped before the stream end); check that every region base is in "
               "memory the NPU reaches and that the weights belong to this payload";
    case MCU_NPU_TIMEOUT:
        return "NPU job did not finish within the wait bound; check the NPU clock and that every "
               "region base is in memory the NPU reaches";
    }
    return "unknown NPU status";
}

/* Appends text to buf[*len], within size - 1 characters, and terminates it. */
static void append(char *buf, uint32_t size, uint32_t *len, const char *text)
{
    while (*text && *len + 1 < size)
        buf[(*len)++] = *text++;
    buf[*len] = 0;
}

static void append_hex32(char *buf, uint32_t size, uint32_t *len, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char text[11] = "0x";
    for (uint32_t i = 0; i < 8; i++)
        text[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    text[10] = 0;
    append(buf, size, len, text);
}

const char *mcu_npu_error_text(mcu_npu_status s)
{
    static char line[400];
    uint32_t len = 0;
    append(line, sizeof line, &len, "npu: ");
    append(line, sizeof line, &len, mcu_npu_status_text(s));
    append(line, sizeof line, &len, " (STATUS=");
    append_hex32(line, sizeof line, &len, last_status);
    append(line, sizeof line, &len, " QREAD=");
    append_hex32(line, sizeof line, &len, last_qread);
    append(line, sizeof line, &len, ")");
    return line;
}

#ifndef MCU_NPU_NO_CONSOLE
void mcu_npu_check(mcu_npu_status s)
{
    if (s == MCU_NPU_OK)
        return;
    mcu_puts("MCU-ERROR npu: ");
    mcu_puts(mcu_npu_status_text(s));
    mcu_puts(" (STATUS=");
    mcu_put_hex32(last_status);
    mcu_puts(" QREAD=");
    mcu_put_hex32(last_qread);
    mcu_puts(")\n");
    mcu_exit(EXIT_ERROR);
}
#endif
