"""Stage 6, render: the planned Edge program -> a self-contained C project.

model.c holds the weights as const arrays, the activation arena and the model's C API,
every public name carrying the model's name as a prefix (default `model`; `kws` gives
kws_invoke(), kws_inputs, KWS_NUM_INPUTS...) so that two models link into one image:
<name>_invoke() runs one inference on the built-in arena (section .arena.<region>, which
board.ld places; plain .bss or none at all with a build option), <name>_invoke_with()
on the caller's, one kernel call per op, each kernel's status checked. The header
<name>.h (model.h for the default name) describes the interface: per input and output
its type, dims, bytes, arena offset, scale and zero point, and float <-> int8 helpers.
The platform files (startup, linker script, main, Makefile, test vectors) come from
codegen/platform.py; the kernels from cmsis_kernels/; codegen/library.py exports
model.c, the header and the kernels as a library for the user's own firmware.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..ir.program import Program
from ..ops import registry
from .c_text import NPU_DEVICE, comment, comment_text, identifier, shape_text
from .emit import emit_op
from ..passes.plan import MemoryPlan

C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "uint8": "uint8_t"}
# The C names derived from tensor names: an arena pointer macro or a const array. The
# names model.c fixes itself (arena, npu_device, invoke, error_op, npu_error, CHECK,
# CHECK_NPU, LAYER_BEGIN, LAYER_DONE, op<i>_*, SCRATCH_op<i>), the C keywords and the model's public names
# (<name>_*, <NAME>_*, for a name check_model_name() accepts) start with neither prefix.
ACTIVATION_PREFIX, CONSTANT_PREFIX = "T_", "c_"
WEIGHTS_COPIED_TO_RAM = ".data.weights"   # the start-up code copies .data from flash

DEFAULT_NAME = "model"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline int
    long register restrict return short signed sizeof static struct switch typedef union unsigned void
    volatile while alignas alignof bool constexpr false nullptr static_assert thread_local true typeof
    typeof_unqual""".split())
# Names whose public identifiers could meet the ones model.c derives: T_<tensor> (a name
# "t" gives T_OK, T_NUM_INPUTS...), c_<tensor> ("c": c_invoke), op<i>_<table> ("op3").
CLASHING_NAME = re.compile(r"t|c|op[0-9]+")
# The public names of the C API without the prefix (lower case: functions and arrays; upper
# case: macros), for the project's harness header (harness_header()).
API_FUNCTIONS = ("invoke", "invoke_with", "last_status", "error_op", "status_text", "quantize", "dequantize",
                 "inputs", "outputs", "input_sizes", "output_sizes", "input_offsets", "output_offsets")
API_MACROS = ("OK", "ERROR_KERNEL", "ERROR_NPU", "ERROR_ARENA", "ARENA_BYTES", "ARENA_ALIGN",
              "NUM_INPUTS", "NUM_OUTPUTS")
ARENA_ALIGN = 16


def check_model_name(name: str) -> str:
    """The model's C name (the prefix of every public symbol), or a one-line InputError."""
    fix = "choose a name like 'kws': 1-32 characters of a-z, 0-9 and _, starting with a letter"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(f"model name {name!r} is not usable as a C prefix; {fix}")
    if name in C_KEYWORDS:
        raise InputError(f"model name {name!r} is a C keyword; {fix}")
    if name.startswith("mcu_"):
        raise InputError(f"model name {name!r} starts with mcu_, the prefix of the kernels and platform "
                         f"functions; {fix}")
    if CLASHING_NAME.fullmatch(name):
        raise InputError(f"model name {name!r} would clash with the names model.c derives from tensors "
                         f"(T_..., c_..., op<i>_...); {fix}")
    return name


def header_name(name: str) -> str:
    """The model's header: model.h for the default name, else <name>.h."""
    return f"{name}.h"


def project_model_name(project_dir: Path) -> str:
    """The C name of the model in a project: model.c includes its own header first."""
    path = Path(project_dir) / "model.c"
    if path.is_file():
        found = re.search(r'^#include "([a-z][a-z0-9_]*)\.h"$', path.read_text(), re.M)
        if found and NAME_PATTERN.fullmatch(found[1]):
            return found[1]
    return DEFAULT_NAME


def float_literal(value: float) -> str:
    """A C float constant equal to the float32 value (the shortest text that reads back exactly)."""
    return np.format_float_scientific(np.float32(value), unique=True, exp_digits=2) + "f"


class ModelSource:
    """Names every tensor once and writes model.c and the model's header <name>.h."""

    def __init__(self, program: Program, plan: MemoryPlan, arena_section: str, npu: dict | None = None,
                 weights_section: str | None = None, name: str = DEFAULT_NAME):
        self.program, self.plan, self.arena_section, self.npu = program, plan, arena_section, npu
        self.weights_section = weights_section
        self.name, self.upper = check_model_name(name), name.upper()
        taken: set[str] = set()
        self.names = {name: identifier(name, CONSTANT_PREFIX if t.is_const else ACTIVATION_PREFIX, taken)
                      for name, t in program.tensors.items()}
        self.referenced: set[str] = set()  # the constants the emitted C uses
        # NPU read-only data lives where the NPU can fetch it, not in the CPU's code region
        self.sections = {name: section for op in program.ops
                         for name, section in registry.of(op).const_sections(op).items()}

    def ref(self, tensor: str) -> str:
        """C name of a tensor's data: a const array, or an arena pointer macro
        (tensors that share storage, like a reshape's output, share the name)."""
        if self.program.tensor(tensor).is_const:
            self.referenced.add(tensor)
            return self.names[tensor]
        inside = self.plan.alias_offsets.get(tensor, 0)
        root = self.names[self.plan.aliases.get(tensor, tensor)]
        return f"({root} + {inside})" if inside else root

    def arena_pointers(self) -> list[str]:
        """One #define per planned activation, in arena order."""
        roots = sorted((b.name for b in self.plan.buffers if b.name in self.program.tensors),
                       key=lambda n: (self.plan.offset(n), n))
        lines = [f"#define {self.names[n]} (arena + {self.plan.offset(n)}) {comment(self.activation_comment(n))}"
                 for n in roots]
        for index, buffer in self.plan.scratch.items():
            op = self.program.ops[index]
            lines.append(f"#define SCRATCH_op{index} (arena + {self.plan.offsets[buffer]}) "
                         + comment(f"scratch of {op.kind} {op.outputs[0]}, {self.plan.sizes[buffer]} B"))
        return lines

    def activation_comment(self, tensor: str) -> str:
        t = self.program.tensor(tensor)
        return f"{t.name}: {t.dtype} {shape_text(t.shape)}, {t.nbytes} B at arena+{self.plan.offset(tensor)}"

    def constant_definition(self, tensor: str) -> str:
        t = self.program.tensor(tensor)
        ctype = C_TYPES[t.dtype]
        values = t.data.reshape(-1)
        per_line = 16 if t.dtype in ("int8", "uint8") else 8
        rows = [", ".join(str(int(v)) for v in values[i:i + per_line])
                for i in range(0, values.size, per_line)]
        body = ",\n    ".join(rows)
        qualifier, section = "const ", ""
        if tensor in self.sections:
            section = f'section("{self.sections[tensor]}"), '
        elif self.weights_section == WEIGHTS_COPIED_TO_RAM and t.quant is not None:
            # initialised data: the startup code copies it from flash into fast RAM
            qualifier, section = "", f'section("{WEIGHTS_COPIED_TO_RAM}"), '
        elif self.weights_section and t.quant is not None:
            section = f'section("{self.weights_section}"), '
        return (comment(f"{t.name}: {t.dtype} {shape_text(t.shape)}, {t.nbytes} B") + "\n"
                f"static {qualifier}{ctype} {self.names[tensor]}[{max(values.size, 1)}] "
                f"__attribute__(({section}aligned(16))) = {{\n    {body}\n}};")

    def model_c(self) -> str:
        fragments = []
        for index, op in enumerate(self.program.ops):
            scratch = self.plan.scratch.get(index)
            scratch_ref = f"SCRATCH_op{index}" if scratch else None
            # the strips of a patch stage share their op's file-scope tables
            uid = f"stage_op{op.options['stage_op']}" if "stage_op" in op.options else f"op{index}"
            fragments.append(emit_op(self.program, op, self.ref, scratch_ref, uid, index))
        statements = []
        for index, (op, fragment) in enumerate(zip(self.program.ops, fragments)):
            out = op.outputs[0]
            statements += [*fragment.statements,
                           f"LAYER_DONE({index}, {self.ref(out)}, {self.program.tensor(out).nbytes});"]
        used = [t for t in self.program.constants() if t.name in self.referenced]
        uses_npu = registry.uses_npu(self.program)
        n, N = self.name, self.upper
        lines = [
            f"/* Generated by mcu-compile: the weights, activation arena and invoke functions of model {n}. */",
            '#include <string.h>', f'#include "{header_name(n)}"', '#include "mcu_nnfunctions.h"',
            *(['#include "mcu_npu.h"'] if uses_npu else []), "",
            f"/* Activation arena: {self.plan.arena_bytes} B planned "
            f"(lower bound {self.plan.lower_bound} B: the most bytes live at once).",
            " * Where each activation lives; tensors alive at the same time never overlap. `arena` is, inside",
            " * invoke(), the arena the inference runs on (its parameter) and, at file scope, the built-in",
            " * arena, defined after invoke() so that nothing shadows it. */",
            *self.arena_pointers(), "",
        ]
        lines += [self.constant_definition(t.name) + "\n" for t in used]
        lines += list(dict.fromkeys(d for f in fragments for d in f.declarations))
        if uses_npu:
            lines += ["", self.npu_device()]
        lines += [
            "", f"/* The status checks: a kernel refusing its arguments ends the inference with {N}_ERROR_KERNEL,",
            f" * a failed NPU job with {N}_ERROR_NPU; error_op is the op's index (CHECK's first argument). */",
            f"static int error_op = -1, last_status = {N}_OK;",
            "#define CHECK(op, call) \\",
            f"    do {{ if ((call) != MCU_NN_SUCCESS) {{ error_op = (op); return {N}_ERROR_KERNEL; }} }} while (0)",
        ]
        if uses_npu:
            lines += [
                "static mcu_npu_status npu_error = MCU_NPU_OK;",
                "#define CHECK_NPU(op, call) \\",
                "    do { mcu_npu_status s_ = (call); if (s_ != MCU_NPU_OK) { \\",
                f"        error_op = (op); npu_error = s_; return {N}_ERROR_NPU; }} }} while (0)",
            ]
        lines += [
            "", "/* Layer hooks of the `mcu-compile profile` and `debug` builds (MCU_LAYER_HOOKS): a mark before",
            " * the first op and one after each op with its output; nothing in a normal build. */",
            "#ifdef MCU_LAYER_HOOKS", '#include "mcu_layer_hooks.h"',
            "#define LAYER_BEGIN() mcu_layer_begin()",
            "#define LAYER_DONE(op, output, bytes) mcu_layer_done((op), (output), (bytes))",
            "#else", "#define LAYER_BEGIN() ((void)0)", "#define LAYER_DONE(op, output, bytes) ((void)0)", "#endif"]
        lines += ["", f"/* One inference on arena ({N}_ARENA_BYTES B, {ARENA_ALIGN}-byte aligned), "
                  "a kernel call per op. */",
                  "static int invoke(int8_t *arena)", "{"]
        if uses_npu:
            lines += ["    static int npu_ready = 0;", "    if (!npu_ready)", "    {",
                      f"        CHECK_NPU(-1, mcu_npu_init(&{NPU_DEVICE}));", "        npu_ready = 1;", "    }"]
        lines += ["    LAYER_BEGIN();"]
        lines += ["    " + line for s in statements for line in s.splitlines()]
        lines += [f"    return {N}_OK;", "}", "", self.api()]
        return "\n".join(lines)

    def npu_device(self) -> str:
        """The board's NPU, from its [npu] section."""
        n = self.npu
        region_config = ", ".join(str(int(v)) for v in n["region_config"])
        axi = ", ".join(f"0x{int(v):08x}u" for v in n.get("axi_limit", [0, 0, 0, 0]))
        return (comment(f"{n['variant']} with {n['macs']} MACs at 0x{int(n['base']):08x}, IRQ {n['irq']}") + "\n"
                f"static const mcu_npu_device {NPU_DEVICE} = {{\n"
                f"    .base = 0x{int(n['base']):08x}u, .irq = {n['irq']}u, .qconfig = {n['qconfig']}u,\n"
                f"    .region_config = {{{region_config}}}, .axi_limit = {{{axi}}}}};")

    def io_tables(self) -> str:
        """The inputs' and outputs' pointers into the built-in arena (file-scope `arena`)."""
        def table(kind: str, tensors: list[str]) -> str:
            pointers = ",\n".join(f"    {self.ref(t)} " + comment(f"{t}: {self.program.tensor(t).dtype} "
                                                                 f"{shape_text(self.program.tensor(t).shape)}")
                                   for t in tensors)
            return f"int8_t *const {self.name}_{kind}s[{self.upper}_NUM_{kind.upper()}S] = {{\n{pointers}\n}};"
        return table("input", self.program.inputs) + "\n" + table("output", self.program.outputs)

    def size_tables(self) -> str:
        p, n, N = self.program, self.name, self.upper
        lines = []
        for kind, tensors in (("input", p.inputs), ("output", p.outputs)):
            count = f"{N}_NUM_{kind.upper()}S"
            sizes = ", ".join(str(p.tensor(t).nbytes) for t in tensors)
            offsets = ", ".join(str(self.plan.offset(t)) for t in tensors)
            lines += [f"const uint32_t {n}_{kind}_sizes[{count}] = {{ {sizes} }};",
                      f"const uint32_t {n}_{kind}_offsets[{count}] = {{ {offsets} }};"]
        return "\n".join(lines)

    def api(self) -> str:
        """The public functions and tables after invoke(): the built-in arena and what uses it
        (left out with <NAME>_NO_STATIC_ARENA), the caller's-arena entry, the status."""
        n, N = self.name, self.upper
        npu_case = (f"    case {N}_ERROR_NPU:\n        return mcu_npu_error_text(npu_error);\n"
                    if registry.uses_npu(self.program) else "")
        return f"""#ifndef {N}_NO_STATIC_ARENA
/* The built-in arena: in section {self.arena_section} (mcu-compile's board.ld places it), or in .bss
   with {N}_ARENA_IN_BSS (any linker script places it). */
#ifdef {N}_ARENA_IN_BSS
static int8_t arena[{self.plan.arena_bytes}] __attribute__((aligned({ARENA_ALIGN})));
#else
static int8_t arena[{self.plan.arena_bytes}] __attribute__((section("{self.arena_section}"), aligned({ARENA_ALIGN})));
#endif

{self.io_tables()}

int {n}_invoke(void)
{{
    return last_status = invoke(arena);
}}
#endif

{self.size_tables()}

int {n}_invoke_with(int8_t *caller_arena)
{{
    if (caller_arena == NULL || ((uintptr_t)caller_arena & ({N}_ARENA_ALIGN - 1u)) != 0)
        return last_status = {N}_ERROR_ARENA;
    return last_status = invoke(caller_arena);
}}

int {n}_last_status(void)
{{
    return last_status;
}}

int {n}_error_op(void)
{{
    return error_op;
}}

const char *{n}_status_text(int status)
{{
    switch (status)
    {{
    case {N}_OK:
        return "{n}: ok";
    case {N}_ERROR_KERNEL:
        return "{n}: a kernel refused its arguments ({n}_error_op() is the op's index, CHECK's first "
               "argument in the model's C file); compile the model and its kernels with the same mcu-compile";
{npu_case}    case {N}_ERROR_ARENA:
        return "{n}: the arena given to {n}_invoke_with() is NULL or not {ARENA_ALIGN}-byte aligned; pass "
               "{N}_ARENA_BYTES bytes aligned to {N}_ARENA_ALIGN";
    }}
    return "{n}: unknown status";
}}
"""

    def model_h(self) -> str:
        p, n, N = self.program, self.name, self.upper
        describe = "\n".join(f" *   {kind} {i} {comment_text(t)}: {p.tensor(t).dtype} {shape_text(p.tensor(t).shape)}"
                             for kind, names in (("input", p.inputs), ("output", p.outputs))
                             for i, t in enumerate(names))
        tensors = "\n".join(self.tensor_macros(kind, i, t)
                            for kind, names in (("INPUT", p.inputs), ("OUTPUT", p.outputs))
                            for i, t in enumerate(names))
        return f"""/* Generated by mcu-compile: the C interface of model {n} ({n} is the prefix of every name).
{describe}
 * Activations are NHWC (TFLite's layout: a PyTorch NCHW image is transposed). Write the inputs,
 * call {n}_invoke(), read the outputs; or give an arena of your own to {n}_invoke_with(arena)
 * and find each tensor at arena + {N}_INPUT<i>_OFFSET / {N}_OUTPUT<i>_OFFSET. Both return
 * {N}_OK (0) or an error status; {n}_status_text() says what failed and how to fix it.
 *
 * Build options (define them for every file that includes this header):
 *   {N}_ARENA_IN_BSS      the built-in arena in .bss instead of section {self.arena_section}, which
 *                         mcu-compile's board.ld places (any linker script places .bss)
 *   {N}_NO_STATIC_ARENA   no built-in arena: only {n}_invoke_with(); {n}_invoke(), {n}_inputs and
 *                         {n}_outputs do not exist
 */
#ifndef {N}_H
#define {N}_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

/* What {n}_invoke() and {n}_invoke_with() return. */
#define {N}_OK 0
#define {N}_ERROR_KERNEL 1 /* a kernel refused its arguments: {n}_error_op() is the op's index */
#define {N}_ERROR_NPU 2    /* an Ethos-U job failed: {n}_status_text() says why */
#define {N}_ERROR_ARENA 3  /* {n}_invoke_with(): the arena is NULL or misaligned */

#define {N}_ARENA_BYTES {self.plan.arena_bytes}
#define {N}_ARENA_ALIGN {ARENA_ALIGN}
#define {N}_NUM_INPUTS {len(p.inputs)}
#define {N}_NUM_OUTPUTS {len(p.outputs)}

{tensors}

/* One inference on an arena of {N}_ARENA_BYTES bytes aligned to {N}_ARENA_ALIGN, the inputs
 * written at their offsets; the outputs are then at theirs. NULL or misaligned: {N}_ERROR_ARENA.
 * The arena is the model's working memory: an inference may overwrite its inputs, so write
 * them again before the next one. */
int {n}_invoke_with(int8_t *arena);

#ifndef {N}_NO_STATIC_ARENA
/* One inference on the built-in arena, through which {n}_inputs and {n}_outputs point. */
int {n}_invoke(void);
extern int8_t *const {n}_inputs[{N}_NUM_INPUTS];
extern int8_t *const {n}_outputs[{N}_NUM_OUTPUTS];
#endif

extern const uint32_t {n}_input_sizes[{N}_NUM_INPUTS];     /* bytes */
extern const uint32_t {n}_input_offsets[{N}_NUM_INPUTS];   /* from the arena's start */
extern const uint32_t {n}_output_sizes[{N}_NUM_OUTPUTS];
extern const uint32_t {n}_output_offsets[{N}_NUM_OUTPUTS];

/* The status the last {n}_invoke() or {n}_invoke_with() returned: for a caller that runs the
 * model through a function pointer of another type (a scheduler, a timing helper). */
int {n}_last_status(void);

/* After an error status: the index of the op that failed (-1: the NPU's initialisation). */
int {n}_error_op(void);

/* One line naming what a status means and how to fix it. */
const char *{n}_status_text(int status);

/* float -> int8 as TFLite's QUANTIZE: clamp(round(x / scale) + zero_point), the division in
 * float, halves rounded away from zero. E.g. {n}_quantize(x, {N}_INPUT0_SCALE, {N}_INPUT0_ZERO_POINT). */
static inline int8_t {n}_quantize(float x, float scale, int32_t zero_point)
{{
    float r = x / scale;
    if (!(r > -1024.0f)) /* NaN too */
        r = -1024.0f;
    if (r > 1024.0f)
        r = 1024.0f;
    int32_t q = (int32_t)r;         /* towards zero */
    float rest = r - (float)q;      /* exact */
    q += (rest >= 0.5f) - (rest <= -0.5f);
    q += zero_point;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}}

/* int8 -> float as TFLite's DEQUANTIZE: scale * (q - zero_point). */
static inline float {n}_dequantize(int8_t q, float scale, int32_t zero_point)
{{
    return scale * (float)((int32_t)q - zero_point);
}}

#ifdef __cplusplus
}}
#endif
#endif
"""

    def tensor_macros(self, kind: str, index: int, tensor: str) -> str:
        """An input's or output's constants: C type, rank, dims, bytes, arena offset, quantization."""
        t = self.program.tensor(tensor)
        N = self.upper
        stem = f"{N}_{kind}{index}"
        lines = [comment(f"{kind.lower()} {index} {tensor}: {t.dtype} {shape_text(t.shape)}"),
                 f"#define {stem}_TYPE {C_TYPES[t.dtype]}",
                 f"#define {stem}_RANK {len(t.shape)}",
                 f"#define {stem}_DIMS {{{', '.join(str(int(d)) for d in t.shape)}}}",
                 f"#define {stem}_BYTES {t.nbytes}",
                 f"#define {stem}_OFFSET {self.plan.offset(tensor)}"]
        if t.quant is not None and np.size(t.quant.scale) == 1:
            lines += [f"#define {stem}_SCALE {float_literal(t.quant.scale[0])}",
                      f"#define {stem}_ZERO_POINT {int(t.quant.zero_point[0])}"]
        return "\n".join(lines) + "\n"

    def harness_header(self) -> str:
        """model.h of a project whose model has another name: the default names the project's
        own test harness (main.c, test_vectors.c) uses, for this model's. Not part of the library."""
        n, N = self.name, self.upper
        defines = [f"#define model_{f} {n}_{f}" for f in API_FUNCTIONS]
        defines += [f"#define MODEL_{m} {N}_{m}" for m in API_MACROS]
        return "\n".join([
            "/* Generated by mcu-compile: the default names (model_invoke, MODEL_NUM_INPUTS...) that this",
            f" * project's test harness uses, for model {n} ({header_name(n)}). Not part of the library. */",
            "#ifndef MODEL_H", "#define MODEL_H", f'#include "{header_name(n)}"', "", *defines, "", "#endif", ""])


def render_model(program: Program, plan: MemoryPlan, project_dir: Path,
                 npu: dict | None = None, weights_in_ram: bool = False, name: str = DEFAULT_NAME,
                 weights_region: dict | None = None) -> list[str]:
    """Writes model.c and the model's header <name>.h (the built-in arena in section
    .arena.<plan.region>; npu: the board's [npu] section, for models with NPU partitions);
    for a name other than "model" also model.h, which maps the default names the project's
    test harness uses to the model's. Returns the C names of the constant arrays (weights).
    weights_in_ram: weights are copied from flash to the data region at start-up (faster
    reads on boards with slow flash). weights_region: the report's placement of the weights
    ({"name", "moved"}); moved weights go to section .weights.<name>."""
    section = (WEIGHTS_COPIED_TO_RAM if weights_in_ram else
               f".weights.{weights_region['name']}" if weights_region and weights_region["moved"] else None)
    source = ModelSource(program, plan, f".arena.{plan.region}", npu, section, name)
    project_dir = Path(project_dir)
    (project_dir / "model.c").write_text(source.model_c())
    (project_dir / header_name(name)).write_text(source.model_h())
    if name != DEFAULT_NAME:
        (project_dir / "model.h").write_text(source.harness_header())
    return [source.names[t.name] for t in program.weights()]
