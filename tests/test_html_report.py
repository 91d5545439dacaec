"""The HTML budget report: one self-contained page whose timeline draws exactly the plan."""
from __future__ import annotations

import base64
import copy
import html
import re

import pytest
import torch

import mcu_compile
from mcu_compile.report.html import short_name, timeline_figure, write_html


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    torch.manual_seed(0)
    example = (torch.randn(1, 3, 8, 8),)
    compiled = mcu_compile.compile(Tiny().eval(), example, calibration=[example], out_dir=tmp_path_factory.mktemp("tiny"))
    return compiled.report


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def synthetic_report(n_ops: int) -> dict:
    """A long chain: op i reads buffer i-1 and writes buffer i (sizes up to 100 KB), with
    small scratch on every third op; the shape of a MobileNet-sized plan."""
    buffers, ops = [], []
    sizes = [(100_000 if i % 10 == 0 else 3_000 + 997 * (i % 7)) for i in range(n_ops + 1)]
    for i, size in enumerate(sizes):
        buffers.append({"name": f"model/block_{i}/conv;model/block_{i}/bn", "offset": 0 if i % 2 else 100_032,
                        "size": size, "first_op": i - 1, "last_op": i, "kind": "tensor", "shares_with": []})
    for i in range(0, n_ops, 3):
        buffers.append({"name": f"scratch:{i}", "offset": 200_064, "size": 96, "first_op": i, "last_op": i,
                        "kind": "scratch", "shares_with": []})
    for i in range(n_ops):
        live = sum(b["size"] for b in buffers if b["first_op"] <= i <= b["last_op"])
        ops.append({"index": i, "kind": "CONV_2D", "output": buffers[i + 1]["name"], "weights_bytes": 100 + i,
                    "live_bytes": live})
    lower = max(op["live_bytes"] for op in ops)
    arena = max(b["offset"] + b["size"] for b in buffers)
    return {"board": "test-board", "cpu": "cortex-m4",
            "model": {"ops": n_ops, "op_counts": {"CONV_2D": n_ops}, "inputs": [], "outputs": []},
            "arena": {"bytes": arena, "lower_bound": lower, "region": "ram", "shared_storage": {}},
            "weights_bytes": 5_000, "stack_bytes": 4096,
            "plan": {"buffers": buffers, "ops": ops},
            "regions": {"flash": {"kind": "flash", "origin": 0, "size": 1 << 20, "used": 40_000, "percent": 3.81,
                                  "headroom": (1 << 20) - 40_000, "predicted": True},
                        "ram": {"kind": "ram", "origin": 1 << 29, "size": 256 * 1024, "used": arena + 4096,
                                "percent": round(100 * (arena + 4096) / (256 * 1024), 2),
                                "headroom": 256 * 1024 - arena - 4096, "predicted": True}}}


def test_page_is_self_contained_with_every_op_and_the_arena_numbers(report, tmp_path):
    path = write_html(report, tmp_path / "sub" / "report.html")
    assert path == tmp_path / "sub" / "report.html" and path.is_file()
    page = path.read_text()
    pngs = embedded_pngs(page)
    assert pngs and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', page), "no external assets"
    arena = report["arena"]
    assert f'id="arena-bytes">{arena["bytes"]:,} B<' in page
    assert f'id="lower-bound">{arena["lower_bound"]:,} B<' in page
    assert report["board"] in page
    ops = report["plan"]["ops"]
    assert len(ops) >= 3
    peak = max(ops, key=lambda op: op["live_bytes"])["index"]
    for op in ops:
        row = re.search(rf'<tr class="(peak)?" id="op-{op["index"]}">(.*?)</tr>', page, re.S)
        assert row, op
        assert (row.group(1) == "peak") == (op["index"] == peak)
        cells = row.group(2)
        assert op["kind"] in cells and html.escape(short_name(op["output"], limit=40)) in cells
        assert f'{op["live_bytes"]:,}' in cells and f'{op["weights_bytes"]:,}' in cells
    assert "Not built yet" in page   # compile() alone: no ELF split


def test_timeline_rectangles_are_the_plan(report):
    fig, rects = timeline_figure(report)
    buffers = report["plan"]["buffers"]
    assert sorted(r["name"] for r in rects) == sorted(b["name"] for b in buffers)
    by_name = {r["name"]: r for r in rects}
    for b in buffers:
        r = by_name[b["name"]]
        assert r["kind"] == b["kind"]
        assert (r["x0"], r["x1"]) == pytest.approx((b["first_op"] - 0.5, b["last_op"] + 0.5))
        assert (r["y0"], r["y1"]) == pytest.approx((b["offset"], b["offset"] + b["size"]))
    # They are really on the timeline axes, and the labels drawn are the ones reported.
    timeline = fig.axes[0]
    drawn = {(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in timeline.patches}
    for r in rects:
        assert (r["x0"], r["y0"], r["x1"] - r["x0"], r["y1"] - r["y0"]) in drawn
    texts = {t.get_text() for t in timeline.texts}
    assert {r["label"] for r in rects if r["label"]} <= texts
    assert any(r["label"] for r in rects)
    # Arena size and lower bound are the two dashed lines.
    levels = sorted(line.get_ydata()[0] for line in timeline.lines)
    assert levels == sorted([report["arena"]["bytes"], report["arena"]["lower_bound"]])


def test_big_plan_gets_a_wider_figure_and_labels_only_where_they_fit():
    small_fig, _ = timeline_figure(synthetic_report(12))
    big = synthetic_report(70)
    big_fig, rects = timeline_figure(big)
    assert big_fig.get_size_inches()[0] > small_fig.get_size_inches()[0]
    labelled = {r["name"] for r in rects if r["label"]}
    assert any(b["size"] == 100_000 and b["name"] in labelled for b in big["plan"]["buffers"])
    assert not any(b["kind"] == "scratch" and b["name"] in labelled for b in big["plan"]["buffers"])
    # Every label that was kept lies inside its rectangle.
    renderer = big_fig.canvas.get_renderer()
    timeline = big_fig.axes[0]
    by_position = {((r["x0"] + r["x1"]) / 2, (r["y0"] + r["y1"]) / 2): r for r in rects}
    for text in timeline.texts:
        r = by_position[text.get_position()]
        box = text.get_window_extent(renderer)
        (x0, y0), (x1, y1) = timeline.transData.transform([(r["x0"], r["y0"]), (r["x1"], r["y1"])])
        assert x0 <= box.x0 and box.x1 <= x1 and y0 <= box.y0 and box.y1 <= y1


def test_built_report_shows_the_flash_split_and_largest_symbols(report, tmp_path):
    built = copy.deepcopy(report)
    flash = {"weights": 9000, "requantization": 700, "kernels": 4000, "model_code": 900, "test_vectors": 300,
             "startup_and_harness": 2000, "libc": 400, "alignment": 4}
    built["elf"] = {"regions": {}, "flash_bytes": sum(flash.values()), "flash": flash,
                    "largest_symbols": [{"name": "mcu_convolve_s8", "bytes": 1084, "kind": "func"},
                                        {"name": "weights_<conv1>", "bytes": 864, "kind": "object"}]}
    page = write_html(built, tmp_path / "built.html").read_text()
    assert "Not built yet" not in page
    for label in ("requantization", "kernels", "model code", "test vectors", "startup and harness", "libc"):
        assert label in page
    assert f'{sum(flash.values()):,} B of flash' in page
    assert "mcu_convolve_s8" in page and "weights_&lt;conv1&gt;" in page   # names are escaped


def test_a_region_that_overflows_is_the_headline(tmp_path):
    report = synthetic_report(30)
    ram = report["regions"]["ram"]
    ram.update(size=100_000, headroom=100_000 - ram["used"])
    page = write_html(report, tmp_path / "over.html").read_text()
    assert "Does not fit" in page and f"over by {ram['used'] - 100_000:,} B" in page
    assert len(re.findall(r'<tr class="(?:peak)?" id="op-', page)) == 30
    assert len(embedded_pngs(page)) == 1


def test_kws_reference_model(shared_dir, tmp_path):
    compiled = mcu_compile.compile(shared_dir / "models" / "kws_ref_model.tflite", out_dir=tmp_path / "kws")
    page = write_html(compiled.report, tmp_path / "kws.html").read_text()
    assert len(re.findall(r'<tr class="(?:peak)?" id="op-', page)) == len(compiled.report["plan"]["ops"])
    assert "activation_1/Relu" in page   # TFLite's fused names shortened


def test_npu_placement_and_reasons_are_on_the_page(tmp_path):
    from test_delegate import pool_stride_4_program
    from mcu_compile.ir.tflite_io import write_tflite
    path = tmp_path / "pool4.tflite"
    path.write_bytes(write_tflite(pool_stride_4_program()))
    compiled = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "fw")
    page = (write_html(compiled.report, tmp_path / "r.html")).read_text()
    assert "ethos-u55-128" in page and "2 ops on the NPU" in page
    assert "Unsupported kernel stride: 4, 4" in page
