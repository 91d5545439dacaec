"""The budget report as one self-contained HTML page, for a person deciding whether a
model fits a board and where its memory goes.

    write_html(report, path)   # report: the dict of predicted_report()/with_elf()

The page holds a headline (board, arena vs its lower bound, every used memory region
with its headroom, fits or not), the memory timeline (each arena buffer as a rectangle
over the ops it lives through, above the bytes live at each op), a per-layer table,
and the flash split with the largest symbols once the project has been built. The
pictures are matplotlib PNGs embedded as base64; no external files, no JavaScript.
Names come from the model and may hold anything: the page escapes every string
(autoescape) and the pictures draw them as plain text, without mathtext.
"""
from __future__ import annotations

import base64
import functools
import io
import math
from pathlib import Path

import jinja2
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from ..ops import registry
from .budget import overflowing_regions, short_name
from ..resources import resource_dir

TEMPLATE = "report.html.j2"

TENSOR_COLORS = ("#4e79a7", "#76a1cf")   # two blues, alternating so neighbours stand apart
SCRATCH_COLOR = "#f28e2b"
PEAK_COLOR = "#d62728"
STAGE_COLOR = "#2ca02c"
ARENA_LINE_COLOR = "#222222"

# Matplotlib inches -> CSS pixels on the page (the PNG is rendered at twice that).
CSS_DPI = 100
PNG_DPI = 200

FLASH_COLORS = {
    "weights": "#4e79a7", "requantization": "#76b7b2", "kernels": "#f28e2b",
    "model_code": "#e15759", "test_vectors": "#b07aa1", "startup_and_harness": "#59a14f",
    "libc": "#edc948", "alignment": "#bab0ac",
}
FLASH_LABELS = {
    "weights": "weights", "requantization": "requantization (multipliers, shifts)",
    "kernels": "kernels", "model_code": "model code", "test_vectors": "test vectors",
    "startup_and_harness": "startup and harness", "libc": "libc", "alignment": "alignment",
}


# ---------------------------------------------------------------- names and numbers

def compact_name(name: str, limit: int = 16) -> str:
    """A shorter label still for small rectangles: the layer of a TFLite name
    ('act_3' of 'model/act_3/Relu'), or the short name cut to `limit` characters."""
    if name.startswith("scratch:"):
        return "scratch"
    parts = [p for p in name.split(";", 1)[0].split("/") if p]
    text = parts[-2] if len(parts) >= 2 else short_name(name)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def fmt_bytes(n: int | float) -> str:
    return f"{int(n):,} B"


def fmt_kib(n: int | float) -> str:
    """Bytes in the unit that reads best: B, KiB or MiB."""
    n = int(n)
    if abs(n) < 1024:
        return f"{n} B"
    if abs(n) < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    if abs(n) < 1024 ** 3:
        return f"{n / 1024 ** 2:.2f} MiB"
    return f"{n / 1024 ** 3:.2f} GiB"


def byte_ticks(top: float, target: int = 7) -> tuple[list[float], FuncFormatter]:
    """Round ticks up to `top` in one unit for the whole axis: bytes below 16 KiB
    (0, 2,000, 4,000...), KiB above (0, 20 KiB, 40 KiB...)."""
    unit, suffix = ((1024 ** 2, " MiB") if top >= 4 * 1024 ** 2 else
                    (1024, " KiB") if top >= 16 * 1024 else (1, ""))
    span = max(top / unit, 1.0)
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)   # 2.5 only where labels stay whole
    step = next(m * magnitude for m in steps if m * magnitude >= raw)
    if unit == 1:
        step = max(step, 1)   # no fractions of a byte
    ticks = [k * step * unit for k in range(int(span // step) + 1)]

    def label(value: float, _pos=None) -> str:
        return "0" if value == 0 else f"{value / unit:,.{decimals}f}{suffix}"
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return ticks, FuncFormatter(label)


def kind_label(kind: str) -> str:
    """The op kind's short name for tick labels (the registry's; the kind itself, lower
    case, for a kind this compiler no longer knows)."""
    known = registry.all_kinds().get(kind)
    return known.short_label() if known is not None else kind.lower().replace("_2d", "")


def live_by_step(report: dict) -> list[tuple[int, int]]:
    """(op index, bytes live) for -1 (graph inputs) .. n (graph outputs). For the ops the
    figures come from report['plan']['ops']; the two ends are summed from the buffers."""
    plan = report["plan"]
    n = len(plan["ops"])
    from_ops = {op["index"]: op["live_bytes"] for op in plan["ops"]}
    steps = []
    for i in range(-1, n + 1):
        live = from_ops.get(i)
        if live is None:
            live = sum(b["size"] for b in plan["buffers"] if b["first_op"] <= i <= b["last_op"])
        steps.append((i, live))
    return steps


def peak_op(report: dict) -> int | None:
    ops = report["plan"]["ops"]
    if not ops:
        return None
    return max(ops, key=lambda op: (op["live_bytes"], -op["index"]))["index"]


# ---------------------------------------------------------------- the timeline picture

def _figure_size(n_ops: int) -> tuple[float, float, float]:
    """(width, timeline height, live panel height) in inches, wider for more ops."""
    columns = n_ops + 2
    width = max(10.0, min(1.4 + 0.19 * columns, 40.0))
    return width, 5.2, 2.3


def timeline_figure(report: dict) -> tuple[Figure, list[dict]]:
    """The memory timeline of report['plan'] and the rectangles drawn on it.

    Top panel: x = op index in execution order (-1 = graph inputs, n = graph outputs),
    the ops of a patch stage on a green band,
    y = arena offset; each buffer is a rectangle from first_op - 0.5 to last_op + 0.5
    over [offset, offset + size), blue for tensors and orange for scratch, labelled where
    the label fits. Dashed lines: the arena size and the lower bound. Bottom panel: bytes
    live at each op, whose maximum is the lower bound; the peak op is red in both.

    Each rectangle is returned as {name, kind, x0, x1, y0, y1, label} (label '' when
    it did not fit), read back from the drawn patches.
    """
    plan, arena = report["plan"], report["arena"]
    buffers, ops = plan["buffers"], plan["ops"]
    n = len(ops)
    width, top_h, bottom_h = _figure_size(n)
    gap, left, right, top_margin, bottom_margin = 0.3, 1.1, 0.3, 0.4, 1.0
    height = top_margin + top_h + gap + bottom_h + bottom_margin
    fig = Figure(figsize=(width, height))
    canvas = FigureCanvasAgg(fig)
    x_lo, x_hi = -1.5, n + 0.5

    def panel(bottom: float, h: float):
        return fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, h / height))

    ax = panel(bottom_margin + bottom_h + gap, top_h)
    live_ax = panel(bottom_margin, bottom_h)
    live_ax.sharex(ax)

    arena_bytes, lower = arena["bytes"], arena["lower_bound"]
    peak = peak_op(report)
    y_top = max([arena_bytes, lower, 1] + [b["offset"] + b["size"] for b in buffers]) * 1.06

    if peak is not None:
        for a in (ax, live_ax):
            a.axvspan(peak - 0.5, peak + 0.5, color=PEAK_COLOR, alpha=0.07, zorder=0, lw=0)
    # The patch stage (ops run strip by strip, passes/patch.py): a green band, labelled.
    stage = [op["index"] for op in ops if op.get("strip")]
    if stage:
        for a in (ax, live_ax):
            a.axvspan(min(stage) - 0.5, max(stage) + 0.5, color=STAGE_COLOR, alpha=0.08, zorder=0, lw=0)
        strips = ops[stage[0]]["strip"][1]
        ax.text(min(stage) - 0.4, y_top * 0.985, f"patch stage: {strips} strips", va="top", fontsize=8,
                color=STAGE_COLOR, zorder=4)
    # Graph inputs and outputs live outside the ops: shade their columns.
    for a in (ax, live_ax):
        a.axvspan(x_lo, -0.5, color="#000000", alpha=0.035, zorder=0, lw=0)
        a.axvspan(n - 0.5, x_hi, color="#000000", alpha=0.035, zorder=0, lw=0)

    drawn: list[tuple[dict, Rectangle]] = []
    tensor_index = 0
    for b in sorted(buffers, key=lambda b: (b["first_op"], b["offset"])):
        if b["kind"] == "scratch":
            face, hatch = SCRATCH_COLOR, "////"
        else:
            face, hatch = TENSOR_COLORS[tensor_index % 2], None
            tensor_index += 1
        rect = Rectangle((b["first_op"] - 0.5, b["offset"]), b["last_op"] - b["first_op"] + 1, b["size"],
                         facecolor=face, edgecolor="#1b2a3a", linewidth=0.6, hatch=hatch, zorder=2)
        ax.add_patch(rect)
        drawn.append((b, rect))

    ax.axhline(arena_bytes, color=ARENA_LINE_COLOR, linestyle="--", linewidth=1.2, zorder=3)
    ax.axhline(lower, color=PEAK_COLOR, linestyle=(0, (2, 2)), linewidth=1.4, zorder=3)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(0, y_top)
    ticks, formatter = byte_ticks(y_top)
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(formatter)
    ax.set_ylabel("arena offset")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=0)
    ax.tick_params(axis="x", labelbottom=False)
    handles = [Patch(facecolor=TENSOR_COLORS[0], edgecolor="#1b2a3a", label="tensor"),
               Patch(facecolor=SCRATCH_COLOR, edgecolor="#1b2a3a", hatch="////", label="kernel scratch"),
               ax.lines[0], ax.lines[1]]
    ax.lines[0].set_label(f"arena size {arena_bytes:,} B")
    ax.lines[1].set_label(f"lower bound {lower:,} B")
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=4, fontsize=9,
              frameon=False, borderaxespad=0.0)

    steps = live_by_step(report)
    xs = [i for i, _ in steps]
    colors = [PEAK_COLOR if i == peak else ("#9aa5b1" if i in (-1, n) else "#59a14f") for i in xs]
    live_ax.bar(xs, [live for _, live in steps], width=0.8, color=colors, zorder=2)
    live_ax.axhline(lower, color=PEAK_COLOR, linestyle=(0, (2, 2)), linewidth=1.4, zorder=3)
    live_top = max([lower, 1] + [live for _, live in steps]) * 1.15
    live_ax.set_ylim(0, live_top)
    ticks, formatter = byte_ticks(live_top, target=4)
    live_ax.set_yticks(ticks)
    live_ax.yaxis.set_major_formatter(formatter)
    live_ax.set_ylabel("live bytes")
    live_ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=0)
    live_ax.set_xticks(xs)
    kinds = {op["index"]: kind_label(op["kind"]) for op in ops}
    live_ax.set_xticklabels([("inputs" if i == -1 else "outputs" if i == n else f"{i} {kinds[i]}") for i in xs],
                            rotation=90, fontsize=8, parse_math=False)
    live_ax.set_xlabel("op (execution order)")
    if peak is not None:
        # Keep the note inside the panel when the peak is near either end.
        align = "left" if peak < n * 0.2 else "right" if peak > n * 0.8 else "center"
        live_ax.annotate(f"peak: op {peak}, {steps[peak + 1][1]:,} B", xy=(peak, steps[peak + 1][1]),
                         xytext={"left": (-6, 4), "right": (6, 4), "center": (0, 4)}[align],
                         textcoords="offset points", ha=align, va="bottom",
                         fontsize=8, color=PEAK_COLOR, zorder=4)

    _outline_thin(ax, drawn)
    labels = _label_rectangles(ax, canvas, drawn)
    rects = [{"name": b["name"], "kind": b["kind"], "x0": r.get_x(), "x1": r.get_x() + r.get_width(),
              "y0": r.get_y(), "y1": r.get_y() + r.get_height(), "label": labels.get(b["name"], "")}
             for b, r in drawn]
    return fig, rects


def _outline_thin(ax, drawn) -> None:
    """A buffer a pixel or two high would vanish under its dark outline: outline it in its
    own colour instead, so small scratch and late tensors still show as coloured lines."""
    to_px = ax.transData.transform
    for _, rect in drawn:
        height = abs(to_px((0, rect.get_y() + rect.get_height()))[1] - to_px((0, rect.get_y()))[1])
        if height < 3:
            rect.set_edgecolor(rect.get_facecolor())
            rect.set_linewidth(0.9)
            rect.set_hatch(None)


def _label_rectangles(ax, canvas, drawn) -> dict[str, str]:
    """Write each buffer's name (and size) inside its rectangle when it fits, across or
    up; measure in display pixels and drop the text otherwise."""
    renderer = canvas.get_renderer()
    to_px = ax.transData.transform
    labels: dict[str, str] = {}
    for b, rect in drawn:
        (x0, y0), (x1, y1) = to_px((rect.get_x(), rect.get_y())), to_px(
            (rect.get_x() + rect.get_width(), rect.get_y() + rect.get_height()))
        w, h = abs(x1 - x0) - 4, abs(y1 - y0) - 3
        if w < 6 or h < 6:
            continue
        name, compact = short_name(b["name"]), compact_name(b["name"])
        size = fmt_kib(b["size"]) if b["size"] >= 1024 else f"{b['size']} B"
        candidates = [(f"{name}\n{size}", 0), (name, 0), (f"{name}\n{size}", 90), (name, 90)]
        if compact != name:
            candidates += [(f"{compact}\n{size}", 0), (compact, 0), (compact, 90)]
        cx, cy = rect.get_x() + rect.get_width() / 2, rect.get_y() + rect.get_height() / 2
        for text, rotation in candidates:
            label = ax.text(cx, cy, text, rotation=rotation, ha="center", va="center", fontsize=7.5,
                            color="white" if b["kind"] == "tensor" else "#3b1d00", zorder=4,
                            linespacing=1.1, clip_on=True, parse_math=False)  # names are not TeX
            box = label.get_window_extent(renderer)
            if box.width <= w and box.height <= h:
                labels[b["name"]] = text
                break
            label.remove()
    return labels


def figure_png(fig: Figure) -> str:
    """The figure as a base64 PNG (no 'data:' prefix)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, facecolor="white")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------- the page

def _region_rows(report: dict) -> list[dict]:
    arena = report["arena"]
    elf = report.get("elf") or {}
    rows = []
    for name, row in report["regions"].items():
        if row["used"] == 0 and row["kind"] == "ram":
            continue
        size = row["size"] or 1
        segments = []
        if name == arena["region"]:
            segments.append({"label": "arena", "bytes": arena["bytes"], "color": TENSOR_COLORS[0]})
            other = row["used"] - arena["bytes"]
            if other > 0:
                segments.append({"label": "stack and data", "bytes": other, "color": "#9c755f"})
        elif row["kind"] == "flash" and elf.get("flash") and elf.get("flash_bytes") == row["used"]:
            segments = [{"label": FLASH_LABELS.get(k, k), "bytes": v, "color": FLASH_COLORS.get(k, "#999")}
                        for k, v in elf["flash"].items() if v > 0]
        else:
            segments.append({"label": "used", "bytes": row["used"], "color": "#59a14f"})
        for s in segments:
            s["percent"] = min(100.0, 100.0 * s["bytes"] / size)
        over = row["used"] > row["size"]
        rows.append({**row, "name": name, "segments": segments, "over": over,
                     "level": "over" if over else "warn" if row["percent"] >= 85 else "ok"})
    return rows


def _op_rows(report: dict) -> list[dict]:
    ops = report["plan"]["ops"]
    lower = report["arena"]["lower_bound"] or 1
    peak = peak_op(report)
    return [{**op, "short": short_name(op["output"], limit=40), "peak": op["index"] == peak,
             "live_percent": 100.0 * op["live_bytes"] / lower} for op in ops]


def _buffer_rows(report: dict) -> list[dict]:
    n = len(report["plan"]["ops"])

    def when(i: int) -> str:
        return "inputs" if i == -1 else "outputs" if i == n else str(i)
    return [{**b, "short": short_name(b["name"], limit=40), "first": when(b["first_op"]), "last": when(b["last_op"])}
            for b in sorted(report["plan"]["buffers"], key=lambda b: (b["offset"], b["first_op"]))]


def _flash(report: dict) -> dict | None:
    elf = report.get("elf")
    if not elf or not elf.get("flash"):
        return None
    total = sum(v for v in elf["flash"].values() if v > 0) or 1
    parts = [{"key": k, "label": FLASH_LABELS.get(k, k.replace("_", " ")), "bytes": v,
              "percent": 100.0 * v / total, "color": FLASH_COLORS.get(k, "#999")}
             for k, v in elf["flash"].items()]
    return {"total": elf.get("flash_bytes", total), "parts": parts,
            "symbols": elf.get("largest_symbols", [])}


def page_context(report: dict) -> dict:
    """Everything the template shows, computed once."""
    arena = report["arena"]
    over = overflowing_regions(report)
    extra = arena["bytes"] - arena["lower_bound"]
    fig, rects = timeline_figure(report)
    width, height = fig.get_size_inches()
    return {
        "r": report,
        "fits": not over,
        "over": [{"name": name, "by": row["used"] - row["size"], **row} for name, row in over],
        "measured": "elf" in report,
        "arena_extra": extra,
        "arena_extra_percent": 100.0 * extra / arena["lower_bound"] if arena["lower_bound"] else 0.0,
        "regions": _region_rows(report),
        "ops": _op_rows(report),
        "peak": peak_op(report),
        "buffers": _buffer_rows(report),
        "labelled": sum(1 for r in rects if r["label"]),
        "timeline_png": figure_png(fig),
        "timeline_width": int(round(width * CSS_DPI)),
        "timeline_height": int(round(height * CSS_DPI)),
        "flash": _flash(report),
        "op_counts": sorted(report["model"]["op_counts"].items(), key=lambda kv: (-kv[1], kv[0])),
        "placement": report.get("ops", []),
        "npu": report.get("npu"),
    }


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("firmware_templates"))),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["bytes"] = fmt_bytes
    env.filters["kib"] = fmt_kib
    env.filters["short"] = short_name
    return env


def render_html(report: dict) -> str:
    return _environment().get_template(TEMPLATE).render(**page_context(report))


def write_html(report: dict, path: Path) -> Path:
    """Write the budget report `report` as one self-contained HTML page at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
