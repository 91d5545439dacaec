"""Our static memory plan as TFLite Micro's offline memory plan, so TFLM can run a
Program with exactly the arena layout the firmware uses.

TFLM looks for a model metadata entry named "OfflineMemoryAllocation". Its buffer is
a little-endian int32 array (see TFLM's micro/docs/memory_management.md and
AllocationInfoBuilder::GetOfflinePlannedOffsets):

  [0]      format version (1; TFLM does not read it)
  [1]      subgraph index the plan applies to (0; TFLM does not read it)
  [2]      n, the number of offsets that follow; TFLM refuses the model unless n
           equals the number of tensors in the model (all subgraphs, concatenated)
  [3 + i]  byte offset of tensor i from the start of the arena's non-persistent
           ("head") section, or -1 to let TFLM's greedy planner place it

TFLM only plans tensors without data of their own (not constants, not variables)
and of nonzero size; their entry is ignored otherwise, so we write -1 for them.
Offline offsets are taken as they are: TFLM never checks them for overlap, so
tensors may share bytes. A reshape's output at its input's offset is what TFLM's
reshape kernel expects for an in-place reshape (it copies only when the two data
pointers differ); other aliases of our plan (e.g. an elementwise op writing over an
input that dies there) work as long as the kernel reads each element before it
writes the same index. Graph inputs and outputs get their planned offsets too. Kernel
scratch buffers TFLM requests at run time stay online-planned; TFLM fits them into
the gaps around the offline tensors, using its own lifetimes. Our own kernels'
scratch buffers (plan.scratch) have no TFLM tensor; they are simply bytes TFLM
leaves unused. TFLM rounds each buffer up to 16 bytes, and our offsets are 16-aligned,
so its head section is max(offset + size rounded up to 16) over the planned tensors.

TFLM applies the plan with its default (greedy) memory planner only. The Python
interpreter's kPreserveAllTensors mode fails on a model with an offline plan ("TFLM
failed to allocate tensors"; its linear planner takes no offline offsets).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..errors import IRError
from .program import Program
from ..passes.plan import MemoryPlan
from .tflite_io import write_tflite

METADATA_NAME = "OfflineMemoryAllocation"
FORMAT_VERSION = 1
SUBGRAPH_INDEX = 0
ONLINE = -1  # TFLM's kOnlinePlannedBuffer
HEADER_WORDS = 3
_INT32_MAX = 2**31 - 1


def written_tensor_names(program: Program) -> list[str]:
    """Names of the tensors of the file write_tflite makes of `program`, in file order.

    Read back from the written file rather than assumed: the writer may add tensors
    of its own (a zero bias for a depthwise convolution without one).
    """
    data = write_tflite(program)
    model = fb.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() != 1:  # the writer makes one subgraph; TFLM counts all
        raise IRError(f"expected one subgraph, the written file has {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    return [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]


def offline_offsets(program: Program, plan: MemoryPlan,
                    names: list[str] | None = None) -> list[int]:
    """One arena offset per written tensor (file order); -1 where TFLM plans or nothing is planned."""
    names = written_tensor_names(program) if names is None else names
    offsets = []
    for name in names:
        tensor = program.tensors.get(name)
        root = plan.aliases.get(name, name)
        if tensor is None or tensor.is_const or tensor.nbytes == 0 or root not in plan.offsets:
            offsets.append(ONLINE)
            continue
        offset = plan.offset(name)
        if not 0 <= offset <= _INT32_MAX - tensor.nbytes:
            raise IRError(f"tensor {name!r}: offset {offset} does not fit TFLM's int32 plan")
        offsets.append(int(offset))
    return offsets


def check_no_live_overlap(program: Program, plan: MemoryPlan, placed: dict[str, int]) -> None:
    """Raise if two tensors that are live together in `program`'s op order (the order
    TFLM runs them) share bytes, other than tensors the plan made one buffer (aliases).

    Guards against writing a plan made for another op order (e.g. a rescheduled copy
    of the program) into this program's file.
    """
    end = len(program.ops)
    spans: dict[str, list[int]] = {}  # alias root -> [first op, last op, bytes]

    def touch(name: str, index: int) -> None:
        if name not in placed:
            return
        span = spans.setdefault(plan.aliases.get(name, name), [index, index, 0])
        span[0], span[1] = min(span[0], index), max(span[1], index)
        span[2] = max(span[2], program.tensor(name).nbytes)

    for name in program.inputs:
        touch(name, -1)
    for index, op in enumerate(program.ops):
        for name in op.inputs + op.outputs:
            if name:
                touch(name, index)
    for name in program.outputs:
        touch(name, end)
    groups = sorted(spans.items(), key=lambda item: plan.offsets[item[0]])
    for i, (a, (a0, a1, a_bytes)) in enumerate(groups):
        a_start = plan.offsets[a]
        for b, (b0, b1, b_bytes) in groups[i + 1:]:
            if plan.offsets[b] >= a_start + a_bytes:
                break
            if a0 <= b1 and b0 <= a1:
                raise IRError(f"the plan puts {a!r} and {b!r} in the same bytes while both are "
                                 "live; plan the program in the op order it is written in")


def offline_plan_metadata(program: Program, plan: MemoryPlan) -> bytes:
    """The "OfflineMemoryAllocation" metadata buffer placing `program`'s activations as `plan` does."""
    names = written_tensor_names(program)
    offsets = offline_offsets(program, plan, names)
    check_no_live_overlap(program, plan, {n: o for n, o in zip(names, offsets) if o != ONLINE})
    words = [FORMAT_VERSION, SUBGRAPH_INDEX, len(offsets), *offsets]
    return np.asarray(words, dtype="<i4").tobytes()


def parse_offline_plan(data: bytes) -> tuple[int, int, list[int]]:
    """(version, subgraph index, offsets) of an "OfflineMemoryAllocation" buffer."""
    if len(data) < 4 * HEADER_WORDS or len(data) % 4:
        raise IRError(f"offline memory plan of {len(data)} bytes: not a header plus int32 offsets")
    words = np.frombuffer(data, dtype="<i4")
    version, subgraph, count = (int(w) for w in words[:HEADER_WORDS])
    if count != len(words) - HEADER_WORDS:
        raise IRError(f"offline memory plan says {count} offsets but holds {len(words) - HEADER_WORDS}")
    return version, subgraph, [int(w) for w in words[HEADER_WORDS:]]


def with_offline_plan(program: Program, plan: MemoryPlan) -> Program:
    """A copy of `program` whose file form carries `plan` as TFLM's offline memory plan.

    The containers are new; Tensor and Op objects are shared with `program`.
    """
    metadata = {**program.metadata, METADATA_NAME: offline_plan_metadata(program, plan)}
    return dataclasses.replace(program, tensors=dict(program.tensors), ops=list(program.ops),
                               inputs=list(program.inputs), outputs=list(program.outputs),
                               metadata=metadata)
