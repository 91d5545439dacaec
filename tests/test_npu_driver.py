"""Ethos-U driver (firmware_templates/platform/mcu_npu.c).

1. Register level, on the host: mcu_npu.c built with -DMCU_NPU_HOST_TEST, so that every
   register access goes through mcu_npu_hw_read/_write, which a small C fake NPU implements
   (it logs every write in order and answers ID/CONFIG/STATUS/PROT like a U55-128 or U85-256).
   The payloads are real Vela 5.2 COP2 payloads of the AD model, compiled in-process.
2. On QEMU mps3-an547 (the Corstone-300 memory map without an NPU): the firmware must report
   "NPU not found" cleanly with exit code 2, not hang or fault.
3. A strict cross-compile for the Cortex-M55 (and the M85 flags of corstone-320).
"""
from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcu_compile.target.boards import list_boards, load_board
from mcu_compile.target.build import build
from mcu_compile.codegen.platform import render_platform
from mcu_compile.sim.qemu import load_simulator, qemu_command
from firmware_stub import MODEL_H

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = ROOT / "firmware_templates" / "platform"
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
AD_MODEL = MODELS / "ad01_int8.tflite"

BASE = 0x48102000
IRQ = 56
JOB_POLLS, RESET_POLLS, JOB_WAKES = 1000, 100, 8

# Register offsets and bits (Vela 5.2 regor/architecture/ethosu{65,85}/*_interface.hpp).
ID, STATUS, CMD, RESET, QBASE, QBASE_HI, QREAD, QCONFIG, QSIZE, PROT, CONFIG = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28)
REGIONCFG = 0x3C
AXI_LIMIT = [0x40, 0x44, 0x48, 0x4C]   # MEM_ATTR0-3 on the U85
BASEP = [0x80 + 8 * n for n in range(8)]
ST_RUNNING, ST_IRQ, ST_BUS, ST_RESET, ST_PARSE, ST_END = 1, 2, 4, 8, 0x10, 0x20
ST_WD_U55, ST_ECC, ST_BRANCH_U85 = 0x80, 0x100, 0x200

SCB_CCR, CCR_DC = 0xE000ED14, 1 << 16
DCIMVAC, DCCMVAC, DCCIMVAC = 0xE000EF5C, 0xE000EF68, 0xE000EF70
ISER, ICER, ICPR = 0xE000E100, 0xE000E180, 0xE000E280

OK, ABSENT, BAD_PAYLOAD, CONFIG_MISMATCH, RESET_TIMEOUT, PROT_ERROR, JOB_ERROR, TIMEOUT = range(8)

# What Vela 5.2 writes into the payload (ConfigRegister / IdRegister of each architecture).
U55_128 = dict(accel="EthosU55", target="ethos-u55-128", system="Ethos_U55_High_End_Embedded",
               config=0x00001807, id=0x10066001)
U55_256 = dict(accel="EthosU55", target="ethos-u55-256", system="Ethos_U55_High_End_Embedded",
               config=0x00003008, id=0x10066001)
U85_256 = dict(accel="EthosU85", target="ethos-u85-256", system="Ethos_U85_SYS_DRAM_Mid",
               config=0x20000118, id=0x20007000)

FAKE_C = r"""
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "mcu_npu.h"
#include "mcu_io.h"

typedef struct {
    uint64_t base;
    uint32_t id, config, prot_after_reset, qread, ccr, syst_csr, cmd_initial, job_status;
    int32_t reset_polls;  /* STATUS reads showing reset_status after a RESET write; -1 forever */
    int32_t job_polls;    /* STATUS reads showing "running" after CMD run; -1 forever */
    int32_t irq_on_wfe;   /* WFE ends the job and takes the interrupt */
    int32_t cosim_answer; /* the co-simulation host answers: STATUS job_status, QREAD qread */
} fake_config;

#define MAX_LOG 8192
fake_config fake;
uint64_t log_addr[MAX_LOG];
uint32_t log_value[MAX_LOG];
int32_t n_log;
uint32_t status_reads, wfe_calls, resets;
/* The host side of the co-simulation wait point (mcu_npu_hw_cosim_wait). */
uint32_t cosim_calls, cosim_status_seen, cosim_jobs_seen;
const void *cosim_dev, *cosim_job;
uint64_t cosim_job_field;
char out[1024];
static int out_len;
static jmp_buf exit_jump;
static int exit_code;

static uint32_t regs[0x400];
static uint32_t status;
static int32_t countdown;
static enum { IDLE, RESETTING, RUNNING } phase;

void fake_reset(void)
{
    memset(regs, 0, sizeof regs);
    regs[0x08 / 4] = fake.cmd_initial;
    status = 0;
    phase = IDLE;
    n_log = 0;
    status_reads = wfe_calls = resets = cosim_calls = 0;
    out_len = 0;
    out[0] = 0;
}

static void finish_job(void)
{
    phase = IDLE;
    status = fake.job_status;
}

uint32_t mcu_npu_hw_read(uintptr_t addr)
{
    if (addr < fake.base || addr >= fake.base + 0x1000) {
        if (addr == 0xE000ED14u) return fake.ccr;
        if (addr == 0xE000E010u) return fake.syst_csr;
        return 0;
    }
    uint32_t off = (uint32_t)(addr - fake.base);
    switch (off) {
    case 0x00: return fake.id;
    case 0x28: return fake.config;
    case 0x18: return fake.qread;
    case 0x04:
        status_reads++;
        if (phase == RESETTING) {
            if (countdown != 0) {
                if (countdown > 0) countdown--;
                return 0x8;
            }
            phase = IDLE;
            status = 0;
        } else if (phase == RUNNING) {
            if (countdown != 0) {
                if (countdown > 0) countdown--;
                return 0x1;
            }
            finish_job();
        }
        return status;
    default: return regs[off / 4];
    }
}

void mcu_npu_hw_write(uintptr_t addr, uint32_t value)
{
    if (n_log < MAX_LOG) {
        log_addr[n_log] = addr;
        log_value[n_log++] = value;
    }
    if (addr < fake.base || addr >= fake.base + 0x1000) return;
    uint32_t off = (uint32_t)(addr - fake.base);
    regs[off / 4] = value;
    if (off == 0x0C) {
        resets++;
        phase = RESETTING;
        countdown = fake.reset_polls;
        regs[0x24 / 4] = fake.prot_after_reset;
        regs[0x08 / 4] = fake.cmd_initial;
    } else if (off == 0x08) {
        if (value & 1) {
            phase = RUNNING;
            countdown = fake.job_polls;
            status = 0x1;
        }
        if (value & 2) status &= ~2u;
    }
}

void mcu_npu_hw_cosim_wait(const mcu_npu_device *dev, const mcu_npu_job *job)
{
    cosim_calls++;
    cosim_dev = dev;
    cosim_job = job;
    cosim_status_seen = mcu_npu_cosim.status;
    cosim_job_field = mcu_npu_cosim.job;
    cosim_jobs_seen = mcu_npu_cosim.jobs;
    if (fake.cosim_answer) {
        mcu_npu_cosim.status = fake.job_status;
        mcu_npu_cosim.qread = fake.qread;
    }
}

void mcu_npu_hw_wfe(void)
{
    wfe_calls++;
    if (fake.irq_on_wfe && phase == RUNNING) {
        finish_job();
        mcu_npu_irq_handler();
    }
}

static void put(const char *s)
{
    while (*s && out_len < (int)sizeof out - 1) out[out_len++] = *s++;
    out[out_len] = 0;
}

void mcu_puts(const char *s) { put(s); }

void mcu_put_hex32(uint32_t v)
{
    char buf[16];
    snprintf(buf, sizeof buf, "0x%08x", v);
    put(buf);
}

void mcu_exit(int code)
{
    exit_code = code;
    longjmp(exit_jump, 1);
}

/* mcu_npu_check's exit code, or -1 when it returned. */
int fake_check(int s)
{
    if (setjmp(exit_jump)) return exit_code;
    mcu_npu_check((mcu_npu_status)s);
    return -1;
}
"""


class FakeConfig(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64)] + [
        (n, ctypes.c_uint32) for n in ("id", "config", "prot_after_reset", "qread", "ccr", "syst_csr",
                                       "cmd_initial", "job_status")] + [
        (n, ctypes.c_int32) for n in ("reset_polls", "job_polls", "irq_on_wfe", "cosim_answer")]


class Device(ctypes.Structure):
    _fields_ = [("base", ctypes.c_size_t), ("irq", ctypes.c_uint32), ("qconfig", ctypes.c_uint32),
                ("region_config", ctypes.c_uint8 * 8), ("axi_limit", ctypes.c_uint32 * 4)]


class Job(ctypes.Structure):
    _fields_ = [("payload", ctypes.c_void_p), ("payload_bytes", ctypes.c_uint32),
                ("region_base", ctypes.c_size_t * 5),
                ("clean_start", ctypes.c_void_p), ("clean_bytes", ctypes.c_uint32),
                ("invalidate_start", ctypes.c_void_p), ("invalidate_bytes", ctypes.c_uint32),
                ("region_bytes", ctypes.c_uint32 * 5)]


class CosimState(ctypes.Structure):
    """mcu_npu_cosim_state (mcu_npu.h)."""
    _fields_ = [(n, ctypes.c_uint32) for n in ("enabled", "config", "id", "status", "qread")] + [
        ("job", ctypes.c_size_t), ("jobs", ctypes.c_uint32)]


class Npu:
    """The driver linked with the fake NPU, loaded with ctypes."""

    def __init__(self, lib_path: Path):
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.mcu_npu_status_text.restype = ctypes.c_char_p
        self.fake = FakeConfig.in_dll(self.lib, "fake")
        self.cosim = CosimState.in_dll(self.lib, "mcu_npu_cosim")
        self._buffers = []

    def configure(self, hw: dict, **overrides) -> None:
        values = dict(base=BASE, id=hw["id"], config=hw["config"], prot_after_reset=1, qread=0x1234,
                      ccr=0, syst_csr=0, cmd_initial=0xC, job_status=ST_IRQ | ST_END,
                      reset_polls=3, job_polls=5, irq_on_wfe=0, cosim_answer=0)
        values.update(overrides)
        for k, v in values.items():
            setattr(self.fake, k, v)
        self.lib.fake_reset()
        ctypes.memset(ctypes.byref(self.cosim), 0, ctypes.sizeof(self.cosim))   # as in the image

    def writes(self) -> list[tuple[int, int]]:
        """Every register write since the last clear, as (absolute address, value)."""
        n = ctypes.c_int32.in_dll(self.lib, "n_log").value
        addr = (ctypes.c_uint64 * 8192).in_dll(self.lib, "log_addr")
        value = (ctypes.c_uint32 * 8192).in_dll(self.lib, "log_value")
        return [(addr[i], value[i]) for i in range(n)]

    def npu_writes(self) -> list[tuple[int, int]]:
        return [(a - BASE, v) for a, v in self.writes() if BASE <= a < BASE + 0x1000]

    def clear_log(self) -> None:
        ctypes.c_int32.in_dll(self.lib, "n_log").value = 0

    def counter(self, name: str) -> int:
        return ctypes.c_uint32.in_dll(self.lib, name).value

    def init(self, dev: Device) -> int:
        return self.lib.mcu_npu_init(ctypes.byref(dev))

    def run(self, dev: Device, job: Job) -> int:
        return self.lib.mcu_npu_run(ctypes.byref(dev), ctypes.byref(job))

    def check(self, status: int) -> tuple[int, str]:
        code = self.lib.fake_check(status)
        return code, (ctypes.c_char * 1024).in_dll(self.lib, "out").value.decode()

    def text(self, status: int) -> str:
        return self.lib.mcu_npu_status_text(status).decode()

    def aligned(self, data: bytes, misalign: int = 0) -> int:
        """A 16-byte aligned copy of data (plus misalign bytes), kept alive with this object."""
        buf = ctypes.create_string_buffer(len(data) + 32)
        address = (ctypes.addressof(buf) + 15) & ~15
        ctypes.memmove(address + misalign, data, len(data))
        self._buffers.append(buf)
        return address + misalign


def _build_lib(tmp: Path, name: str, defines: list[str]) -> Path:
    fake = tmp / "fake_npu.c"
    fake.write_text(FAKE_C)
    lib = tmp / f"lib{name}.so"
    cmd = ["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
           f"-I{PLATFORM}", "-DMCU_NPU_HOST_TEST", f"-DMCU_NPU_JOB_POLLS={JOB_POLLS}u",
           f"-DMCU_NPU_RESET_POLLS={RESET_POLLS}u", f"-DMCU_NPU_JOB_WAKES={JOB_WAKES}u", *defines,
           str(PLATFORM / "mcu_npu.c"), str(fake), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


@pytest.fixture(scope="module")
def host_libs(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not found")
    tmp = tmp_path_factory.mktemp("npu_host")
    return {"poll": _build_lib(tmp, "npu_poll", []),
            "irq": _build_lib(tmp, "npu_irq", [f"-DMCU_NPU_IRQ={IRQ}"])}


@pytest.fixture
def npu(host_libs):
    return Npu(host_libs["poll"])


@pytest.fixture
def npu_irq(host_libs):
    return Npu(host_libs["irq"])


def _vela_payload(hw: dict) -> bytes:
    """Vela 5.2 in-process: raw output, COP2, separate IO regions (../shared/ETHOSU.md §1)."""
    regor = pytest.importorskip("ethosu.regor")
    from ethosu.vela import architecture_features, vela
    import ethosu.vela as ev
    if not AD_MODEL.is_file():
        pytest.skip(f"{AD_MODEL} not found")
    ini = (Path(ev.__file__).parent.parent / "config_files" / "Arm" / "vela.ini").resolve()
    arch = architecture_features.ArchitectureFeatures(
        vela_config_files=[str(ini)], system_config=hw["system"], memory_mode="Shared_Sram",
        accelerator_config=hw["target"], max_blockdep=3, verbose_config=False, arena_cache_size=None)
    system_config = (f"[architecture]\nmacs={arch.num_macs_per_cycle}\ncores={arch.ncores}\n"
                     f"[vela]\nsystem_config_name={arch.system_config}\n"
                     f"memory_mode_name={arch.memory_mode}\n" + ini.read_text())
    options = vela.get_compiler_config(
        False, False, False, False, "Performance", arch.arena_cache_size, False, False, False, False,
        False, False, False, "raw", False, False, False, False, False, "COP2", True, 16, "HillClimb", 1.0)
    model = regor.compile(hw["accel"], AD_MODEL.read_bytes(), "TFLITE", system_config, options=options)
    return bytes(model.command_stream)


@pytest.fixture(scope="module")
def payloads():
    return {name: _vela_payload(hw) for name, hw in
            (("u55_128", U55_128), ("u55_256", U55_256), ("u85_256", U85_256))}


def _device(axi=(0x11, 0x22, 0x33, 0x44)) -> Device:
    return Device(BASE, IRQ, 2, (ctypes.c_uint8 * 8)(2, 0, 0, 0, 0, 0, 0, 0),
                  (ctypes.c_uint32 * 4)(*axi))


REGIONS = (0x60010000, 0x21000100, 0x21000100, 0x21000400, 0x21000680)


def _job(npu: Npu, payload: bytes, misalign: int = 0, regions=REGIONS, n: int | None = None,
         clean=(0, 0), invalidate=(0, 0)) -> Job:
    address = npu.aligned(payload, misalign)
    return Job(address, len(payload) if n is None else n, (ctypes.c_size_t * 5)(*regions),
               clean[0], clean[1], invalidate[0], invalidate[1])


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


# ---------------------------------------------------------------- payload facts


@pytest.mark.parametrize("name,hw", [("u55_128", U55_128), ("u55_256", U55_256), ("u85_256", U85_256)])
def test_cop2_layout_of_vela_payload(payloads, name, hw):
    """regor tflite/custom_operator_ethosu.hpp CreateDriverPayload2, as the driver parses it."""
    p = payloads[name]
    assert p[0:4] == b"COP2" and struct.unpack_from("<HH", p, 4) == (1, 0)
    assert struct.unpack_from("<Q", p, 8)[0] == len(p) - 16
    assert _u32(p, 16) == 1                               # command-stream entry
    assert _u32(p, 20) == len(p) - 24                     # entry data bytes
    assert _u32(p, 24) == 36                              # metadata bytes, from 28 to the stream
    assert p[28:32] == b"VEUM" and struct.unpack_from("<HH", p, 32) == (1, 0)
    assert _u32(p, 36) == 20                              # metadata data bytes
    assert (_u32(p, 40), _u32(p, 44)) == (hw["config"], hw["id"])
    assert _u32(p, 48) == 2                               # separate IO regions
    assert p[60:64] == b"\xff" * 4                        # padding; the stream starts at byte 64
    assert (len(p) - 64) % 4 == 0 and len(p) > 64


# ---------------------------------------------------------------- register sequences


def test_init_and_run_write_sequence_u55(npu, payloads):
    p = payloads["u55_128"]
    npu.configure(U55_128)
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.npu_writes() == [(RESET, 1)] + list(zip(AXI_LIMIT, (0x11, 0x22, 0x33, 0x44)))
    npu.clear_log()

    job = _job(npu, p)
    assert npu.run(dev, job) == OK
    expected = [(QBASE, (job.payload + 64) & 0xFFFFFFFF), (QSIZE, len(p) - 64), (QCONFIG, 2)]
    expected += [(BASEP[i], REGIONS[i]) for i in range(5)]
    expected += [(REGIONCFG, 0x2), (CMD, 0xC | 1), (CMD, 0xC | 2)]
    assert npu.npu_writes() == expected
    assert npu.writes() == [(BASE + o, v) for o, v in expected]   # D-cache off: no SCB writes
    assert npu.counter("resets") == 1
    assert npu.check(OK) == (-1, "")


def test_run_with_dcache_cleans_and_invalidates_whole_lines(npu, payloads):
    npu.configure(U55_128, ccr=CCR_DC)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    # 640-byte input at ...10 and output at ...90 (misaligned on purpose): 21 lines each.
    job = _job(npu, payloads["u55_128"], clean=(0x21000410, 640), invalidate=(0x21000690, 640))
    assert npu.run(dev, job) == OK
    writes = npu.writes()
    lines_in = [0x21000400 + 32 * i for i in range(21)]
    lines_out = [0x21000680 + 32 * i for i in range(21)]
    start = writes.index((BASE + CMD, 0xD))
    before, after = writes[:start], writes[start + 2:]
    assert [v for a, v in before if a == DCCMVAC] == lines_in
    assert [v for a, v in before if a == DCCIMVAC] == lines_out
    assert before.index((DCCIMVAC, lines_out[-1])) < before.index((BASE + QBASE, job.payload + 64 & 0xFFFFFFFF))
    assert after == [(DCIMVAC, a) for a in lines_out]


def test_init_and_run_write_sequence_u85(npu, payloads):
    p = payloads["u85_256"]
    npu.configure(U85_256)
    dev = _device(axi=(0xA0, 0xA1, 0xA2, 0xA3))
    assert npu.init(dev) == OK
    assert npu.npu_writes() == [(RESET, 1)] + list(zip(AXI_LIMIT, (0xA0, 0xA1, 0xA2, 0xA3)))
    npu.clear_log()
    job = _job(npu, p)
    assert npu.run(dev, job) == OK
    q = job.payload + 64
    expected = [(QBASE, q & 0xFFFFFFFF), (QBASE_HI, q >> 32), (QSIZE, len(p) - 64), (QCONFIG, 2)]
    for i in range(5):
        expected += [(BASEP[i], REGIONS[i]), (BASEP[i] + 4, 0)]
    expected += [(REGIONCFG, 0x2), (CMD, 0xD), (CMD, 0xE)]
    assert npu.npu_writes() == expected


def test_regioncfg_packs_two_bits_per_region(npu, payloads):
    npu.configure(U55_128, cmd_initial=0)
    dev = _device()
    dev.region_config = (ctypes.c_uint8 * 8)(1, 2, 3, 0, 1, 2, 3, 7)
    dev.qconfig = 3
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == OK
    w = dict(npu.npu_writes())
    assert w[REGIONCFG] == 1 | 2 << 2 | 3 << 4 | 0 << 6 | 1 << 8 | 2 << 10 | 3 << 12 | 3 << 14
    assert w[QCONFIG] == 3
    assert [v for o, v in npu.npu_writes() if o == CMD] == [1, 2]   # CMD bits 2-3 kept (0 here)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("payload,hw", [("u55_256", U55_128), ("u55_128", U55_256),
                                        ("u55_128", U85_256), ("u85_256", U55_128)])
def test_payload_for_another_npu_is_refused(npu, payloads, payload, hw):
    npu.configure(hw)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, payloads[payload])) == CONFIG_MISMATCH
    assert npu.writes() == []
    code, text = npu.check(CONFIG_MISMATCH)
    assert code == 2 and text.startswith("MCU-ERROR npu: NPU configuration mismatch")


@pytest.mark.parametrize("hw_id,status", [
    (0x10066001, OK), (0x10166001, OK),      # same or newer architecture minor
    (0x10000001, OK),                        # older patch level: Arm's driver accepts it too
    (0x20066001, CONFIG_MISMATCH),           # other architecture major
])
def test_architecture_version_check(npu, payloads, hw_id, status):
    npu.configure(dict(U55_128, id=hw_id))
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == status


def test_older_architecture_minor_is_refused(npu, payloads):
    p = bytearray(payloads["u55_128"])
    struct.pack_into("<I", p, 44, 0x10166001)    # payload needs architecture 1.1
    npu.configure(U55_128)                       # hardware 1.0
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, bytes(p))) == CONFIG_MISMATCH


def _corrupt(p: bytes, offset: int, data: bytes) -> bytes:
    return p[:offset] + data + p[offset + len(data):]


@pytest.mark.parametrize("how", ["fourcc", "version", "veum", "entry_type", "length", "addressing",
                                 "truncated", "misaligned_payload", "misaligned_region"])
def test_bad_payload_is_refused(npu, payloads, how):
    p = payloads["u55_128"]
    kwargs = {}
    if how == "fourcc":
        p = _corrupt(p, 0, b"COP1")
    elif how == "version":
        p = _corrupt(p, 4, struct.pack("<H", 2))
    elif how == "veum":
        p = _corrupt(p, 28, b"MUEV")
    elif how == "entry_type":
        p = _corrupt(p, 16, struct.pack("<I", 2))
    elif how == "length":
        p = _corrupt(p, 20, struct.pack("<I", len(p)))
    elif how == "addressing":
        p = _corrupt(p, 48, struct.pack("<I", 7))
    elif how == "truncated":
        kwargs["n"] = len(p) - 4
    elif how == "misaligned_payload":
        kwargs["misalign"] = 4
    elif how == "misaligned_region":
        kwargs["regions"] = (0x60010000, 0x21000108, 0x21000108, 0x21000400, 0x21000680)
    npu.configure(U55_128)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, p, **kwargs)) == BAD_PAYLOAD
    assert npu.writes() == []


# ---------------------------------------------------------------- job failures


@pytest.mark.parametrize("hw,bits", [
    (U55_128, ST_IRQ | ST_END | ST_BUS), (U55_128, ST_IRQ | ST_PARSE), (U55_128, ST_IRQ | ST_END | ST_WD_U55),
    (U55_128, ST_IRQ | ST_END | ST_ECC), (U55_128, ST_IRQ),           # stopped before the stream end
    (U85_256, ST_IRQ | ST_END | ST_BRANCH_U85), (U85_256, ST_IRQ | ST_BUS)])
def test_status_error_bits_fail_the_job_and_reset(npu, payloads, hw, bits):
    p = payloads["u55_128" if hw is U55_128 else "u85_256"]
    npu.configure(hw, job_status=bits, qread=0x120)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, p)) == JOB_ERROR
    w = npu.npu_writes()
    i = w.index((CMD, 0xE))                    # cleared, then soft reset and AXI set-up again
    assert w[i + 1:] == [(RESET, 1)] + list(zip(AXI_LIMIT, (0x11, 0x22, 0x33, 0x44)))
    code, text = npu.check(JOB_ERROR)
    assert code == 2
    assert text == (f"MCU-ERROR npu: {npu.text(JOB_ERROR)} "
                    f"(STATUS=0x{bits & ~ST_IRQ:08x} QREAD=0x00000120)\n")


def test_u55_wd_fault_bit_is_not_an_error_on_u85(npu, payloads):
    npu.configure(U85_256, job_status=ST_IRQ | ST_END | ST_WD_U55)   # bit 7 is reserved on U85
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, payloads["u85_256"])) == OK


def test_npu_that_never_finishes_times_out(npu, payloads):
    npu.configure(U55_128, job_polls=-1)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    before = npu.counter("status_reads")
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == TIMEOUT
    assert npu.counter("status_reads") - before <= JOB_POLLS + RESET_POLLS + 4
    w = npu.npu_writes()
    assert (CMD, 0xD) in w and (CMD, 0xE) not in w and w[-5] == (RESET, 1)
    code, text = npu.check(TIMEOUT)
    assert code == 2 and "STATUS=0x00000001" in text and "did not finish" in text


# ---------------------------------------------------------------- init failures


def test_absent_npu(npu, payloads):
    npu.configure(dict(U55_128, id=0, config=0), prot_after_reset=0)
    dev = _device()
    assert npu.init(dev) == ABSENT
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == ABSENT
    assert npu.writes() == []                  # nothing written to a missing device
    code, text = npu.check(ABSENT)
    assert code == 2
    assert text.startswith("MCU-ERROR npu: NPU not found") and text.endswith(
        "(STATUS=0x00000000 QREAD=0x00001234)\n")
    assert "\n" not in text[:-1]


def test_init_failures(npu):
    dev = _device()
    npu.configure(U55_128, reset_polls=-1)
    assert npu.init(dev) == RESET_TIMEOUT
    assert npu.counter("status_reads") <= RESET_POLLS + 2
    npu.configure(U55_128, prot_after_reset=0)      # stayed non-privileged
    assert npu.init(dev) == PROT_ERROR
    assert npu.npu_writes() == [(RESET, 1)]        # no AXI set-up after a failed check
    npu.configure(dict(U55_128, config=0x10001807))  # product 1 (U65): not supported
    assert npu.init(dev) == CONFIG_MISMATCH and npu.writes() == []


def test_status_texts_are_single_lines(npu):
    texts = [npu.text(s) for s in range(8)]
    assert len(set(texts)) == 8 and all("\n" not in t and len(t) < 300 for t in texts)
    assert "NPU not found" in texts[ABSENT]


# ---------------------------------------------------------------- interrupt


def test_irq_wait_sleeps_until_the_interrupt(npu_irq, payloads):
    npu = npu_irq
    bit, word = 1 << (IRQ % 32), 4 * (IRQ // 32)
    npu.configure(U55_128, syst_csr=7, job_polls=-1, irq_on_wfe=1)
    dev = _device()
    assert npu.init(dev) == OK
    assert [w for w in npu.writes() if w[0] >= 0xE0000000] == [
        (ICER + word, bit), (ICPR + word, bit), (ISER + word, bit)]
    npu.clear_log()
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == OK
    assert npu.counter("wfe_calls") == 1
    w = npu.writes()
    start = w.index((BASE + CMD, 0xD))
    # the handler masks the level interrupt; the driver clears the NPU, then re-arms the NVIC
    assert w[start + 1:] == [(ICER + word, bit), (BASE + CMD, 0xE), (ICPR + word, bit), (ISER + word, bit)]


def test_irq_that_never_comes_times_out(npu_irq, payloads):
    npu = npu_irq
    npu.configure(U55_128, syst_csr=7, job_polls=-1, irq_on_wfe=0)
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == TIMEOUT
    assert npu.counter("wfe_calls") == JOB_WAKES


def test_irq_build_polls_when_systick_cannot_wake_it(npu_irq, payloads):
    npu = npu_irq
    npu.configure(U55_128, syst_csr=0, job_polls=20)
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == OK
    assert npu.counter("wfe_calls") == 0


# ---------------------------------------------------------------- co-simulation hook (cosim.py)


def _cosim(npu: Npu, hw: dict) -> None:
    """What mcu_compile/cosim.py writes at main(): enabled, and the board's NPU CONFIG/ID."""
    npu.cosim.enabled, npu.cosim.config, npu.cosim.id = 1, hw["config"], hw["id"]


def test_cosim_hook_is_inert_by_default(npu, payloads):
    npu.configure(U55_128)
    assert npu.cosim.enabled == 0
    dev = _device()
    assert npu.init(dev) == OK and npu.run(dev, _job(npu, payloads["u55_128"])) == OK
    assert npu.counter("cosim_calls") == 0 and npu.cosim.jobs == 0 and npu.cosim.status == 0


@pytest.mark.parametrize("hw", [U55_128, U85_256])
def test_cosim_runs_the_driver_path_on_an_absent_npu(npu, payloads, hw):
    """The registers read 0 (QEMU); the host models the board's NPU: same writes as on hardware,
    no register read, and the job waits at mcu_npu_cosim_wait for the host's status."""
    p = payloads["u55_128" if hw is U55_128 else "u85_256"]
    npu.configure(dict(hw, id=0, config=0), prot_after_reset=0, cmd_initial=0, cosim_answer=1,
                  job_status=ST_IRQ | ST_END, qread=len(p) - 64, syst_csr=7)
    dev = _device()
    assert npu.init(dev) == ABSENT           # without the host: NPU not found, as today
    _cosim(npu, hw)
    reads = npu.counter("status_reads")
    assert npu.init(dev) == OK
    assert npu.npu_writes() == [(RESET, 1)] + list(zip(AXI_LIMIT, (0x11, 0x22, 0x33, 0x44)))
    npu.clear_log()
    job = _job(npu, p)
    assert npu.run(dev, job) == OK
    assert npu.counter("cosim_calls") == 1 and npu.counter("status_reads") == reads
    assert ctypes.c_void_p.in_dll(npu.lib, "cosim_dev").value == ctypes.addressof(dev)
    assert ctypes.c_void_p.in_dll(npu.lib, "cosim_job").value == ctypes.addressof(job)
    assert ctypes.c_uint64.in_dll(npu.lib, "cosim_job_field").value == ctypes.addressof(job)
    assert npu.counter("cosim_status_seen") == ST_RUNNING and npu.counter("cosim_jobs_seen") == 1
    writes = npu.npu_writes()
    assert writes[-2:] == [(CMD, 0xC | 1), (CMD, 0xC | 2)]   # CMD keeps the shadow's Q-enable bits
    assert (QBASE, (job.payload + 64) & 0xFFFFFFFF) in writes and (QSIZE, len(p) - 64) in writes
    assert npu.cosim.status == ST_END        # the IRQ bit cleared by the driver's CMD write
    # SysTick paused around the wait point (QEMU's clock must not run while the host works)
    assert [v for a, v in npu.writes() if a == 0xE000E010] == [6, 7]
    assert npu.run(dev, _job(npu, p)) == OK and npu.cosim.jobs == 2


def test_cosim_checks_the_payload_against_the_boards_npu(npu, payloads):
    npu.configure(dict(U55_128, id=0, config=0), prot_after_reset=0, cosim_answer=1)
    _cosim(npu, U55_256)                     # the board has a U55-256; the payload is for a U55-128
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == CONFIG_MISMATCH
    assert npu.writes() == [] and npu.counter("cosim_calls") == 0


@pytest.mark.parametrize("answer,bits,status", [
    (0, None, TIMEOUT),                          # the host never wrote a status
    (1, ST_IRQ | ST_PARSE, JOB_ERROR),           # the model stopped with a parse error
    (1, ST_IRQ, JOB_ERROR)])                     # stopped before the stream end
def test_cosim_failures(npu, payloads, answer, bits, status):
    npu.configure(dict(U55_128, id=0, config=0), prot_after_reset=0, cosim_answer=answer,
                  job_status=bits or 0, qread=0x40)
    _cosim(npu, U55_128)
    dev = _device()
    assert npu.init(dev) == OK
    npu.clear_log()
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == status
    assert npu.npu_writes()[-5] == (RESET, 1)    # soft reset after the failure
    code, text = npu.check(status)
    shown = ST_RUNNING if bits is None else bits & ~ST_IRQ
    qread = 0 if bits is None else 0x40
    assert code == 2 and text.endswith(f"(STATUS=0x{shown:08x} QREAD=0x{qread:08x})\n")


def test_cosim_does_not_sleep_on_the_interrupt(npu_irq, payloads):
    npu = npu_irq
    npu.configure(dict(U55_128, id=0, config=0), prot_after_reset=0, syst_csr=7, cosim_answer=1,
                  job_status=ST_IRQ | ST_END)
    _cosim(npu, U55_128)
    dev = _device()
    assert npu.init(dev) == OK
    assert npu.run(dev, _job(npu, payloads["u55_128"])) == OK
    assert npu.counter("wfe_calls") == 0 and npu.counter("cosim_calls") == 1


# ---------------------------------------------------------------- target builds


# platform/*.c goes into every board's project, so mcu_npu.c must build for every board's CPU.
@pytest.mark.parametrize("board_name", sorted(list_boards()))
@pytest.mark.parametrize("irq", [[], [f"-DMCU_NPU_IRQ={IRQ}"]])
def test_cross_compiles_strict(tmp_path, board_name, irq):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not found")
    cflags = list(load_board(board_name).cpu.cflags)
    for src in ("mcu_npu.c", "startup.c"):
        std = ["-std=c99", "-pedantic"] if src == "mcu_npu.c" else ["-std=gnu11"]
        proc = subprocess.run(["arm-none-eabi-gcc", *cflags, *std, "-O2", "-Wall", "-Wextra", "-Werror",
                               *irq, f"-I{PLATFORM}", "-c", str(PLATFORM / src),
                               "-o", str(tmp_path / (src + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


MODEL_C = """#include "model.h"
#include "mcu_io.h"
#include "mcu_npu.h"
static int8_t arena[64] __attribute__((section(".arena.sram"), aligned(32)));
static const uint8_t payload[64] __attribute__((section(".const.ddr"), aligned(16))) = {'C', 'O', 'P', '2'};
int8_t *const model_inputs[1] = {arena};
const uint32_t model_input_sizes[1] = {8};
int8_t *const model_outputs[1] = {arena + 32};
const uint32_t model_output_sizes[1] = {8};
static const mcu_npu_device npu = {BASE, IRQ, QCONFIG, {REGIONS}, {0, 0, 0, 0}};
int model_invoke(void)
{
    mcu_npu_job job = {payload, sizeof payload, {(uintptr_t)payload, (uintptr_t)arena,
                       (uintptr_t)arena, (uintptr_t)arena, (uintptr_t)(arena + 32)},
                       arena, 32, arena + 32, 32};
    mcu_npu_status init = mcu_npu_init(&npu);
    mcu_npu_status run = mcu_npu_run(&npu, &job);
    mcu_puts("MCU-NPU init=");
    mcu_put_u64(init);
    mcu_puts(" run=");
    mcu_put_u64(run);
    mcu_puts("\\n");
    mcu_npu_check(init);
    mcu_npu_check(run);
    return 0;
}
"""


def test_qemu_without_npu_reports_npu_not_found(tmp_path, npu):
    """QEMU's mps3-an547 maps 0x48102000 as an unimplemented device: reads 0, writes ignored."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")
    board = load_board("corstone-300")
    assert board.simulator["machine"] == "mps3-an547"
    n = board.npu
    project = tmp_path / "fw"
    project.mkdir()
    (project / "model.h").write_text(MODEL_H)
    (project / "model.c").write_text(
        MODEL_C.replace("BASE", hex(n["base"])).replace("IRQ", str(n["irq"]))
        .replace("QCONFIG", str(n["qconfig"])).replace("REGIONS", ", ".join(map(str, n["region_config"]))))
    render_platform(board, project, [[np.zeros(8, dtype=np.int8)]], stack_bytes=2048, arena_sections={"sram": 64})
    # Route the NPU interrupt through the vector table, as a generated project does.
    with open(project / "Makefile", "a") as f:
        f.write(f"\nCFLAGS += -DMCU_NPU_IRQ={n['irq']}\n")
    elf = build(project)
    cmd = qemu_command(board, elf, load_simulator("qemu"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert "MCU-FAULT" not in proc.stdout
    assert f"MCU-NPU init={ABSENT} run={ABSENT}" in proc.stdout
    error = [l for l in proc.stdout.splitlines() if l.startswith("MCU-ERROR")]
    assert error == ["MCU-ERROR npu: " + npu.text(ABSENT) + " (STATUS=0x00000000 QREAD=0x00000000)"]
    assert proc.returncode == 2
    _check_vector(elf, 16 + n["irq"], "mcu_npu_irq_handler")


def _check_vector(elf_path: Path, index: int, handler: str) -> None:
    from elftools.elf.elffile import ELFFile
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        text = elf.get_section_by_name(".text")
        table = syms["vector_table"] - text["sh_addr"]
        entry = struct.unpack_from("<I", text.data(), table + 4 * index)[0]
    assert entry == syms[handler] | 1
