from __future__ import annotations

import collections
import gzip
import itertools
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from detprof.kernels import (
    TraceError,
    category_table,
    diff_tables,
    kernel_table,
    load_catalog,
    load_trace,
    parse_catalog,
    read_trace_json,
    short_name,
    top_kernels,
)
from detprof.kernels.kineto_scan import scan_gpu_activities
from detprof.kernels.trace import activities_from_document, read_trace_bytes


def _exact_kernel_totals(path: Path) -> dict[str, tuple[int, float]]:
    """Independent reference: sum of dur per name over GPU activity events, straight from the JSON."""
    events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            totals[e["name"]].append(float(e["dur"]))
    return {name: (len(d), sum(d)) for name, d in totals.items()}


def _hta_rule_totals(path: Path) -> dict[str, tuple[int, float]]:
    """Independent reference for the "steps" scope (Holistic Trace Analysis' rule): GPU events whose
    launching CPU event (same args.correlation) starts no later than the end of the last ProfilerStep."""
    events = [e for e in json.loads(gzip.decompress(path.read_bytes()))["traceEvents"] if e.get("ph") == "X"]
    gpu_cats = ("kernel", "gpu_memcpy", "gpu_memset")
    cpu = [e for e in events if e.get("cat") not in gpu_cats]
    step_end = max(e["ts"] + e["dur"] for e in cpu if e["name"].startswith("ProfilerStep#"))
    launched = {e["args"]["correlation"] for e in cpu
                if "correlation" in e.get("args", {}) and e["ts"] <= step_end}
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("cat") in gpu_cats and e["args"]["correlation"] in launched:
            totals[e["name"]].append(float(e["dur"]))
    return {name: (len(d), sum(d)) for name, d in totals.items()}


def _assert_totals(table: pd.DataFrame, reference: dict[str, tuple[int, float]]) -> None:
    assert len(table) == len(reference)
    for row in table.itertuples(index=False):
        calls, total = reference[row.name]
        assert row.calls == calls
        assert row.total_us == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("trace", ["a100_diff_control", "v100_diff_test", "a100_sampled_rank0"])
def test_steps_scope_follows_the_launch_rule_on_real_traces(shared_traces: Path, trace: str) -> None:
    path = shared_traces / f"{trace}.json.gz"
    _assert_totals(kernel_table(load_trace(path).events), _hta_rule_totals(path))


def test_steps_scope_drops_work_launched_outside_the_traced_steps(shared_traces: Path) -> None:
    path = shared_traces / "v100_diff_test.json.gz"
    assert len(load_trace(path, "steps").events) == 15_018 < len(load_trace(path, "all").events) == 15_632


@pytest.mark.parametrize("trace", ["a100_alexnet_train", "v100_diff_test", "a100_sampled_rank0",
                                   "a100_diff_control"])
@pytest.mark.parametrize("scope", ["steps", "all"])
def test_fast_scan_and_full_parse_agree(shared_traces: Path, trace: str, scope: str) -> None:
    path = shared_traces / f"{trace}.json.gz"
    fast = scan_gpu_activities(read_trace_bytes(path), str(path), scope)
    assert fast is not None, "every shared trace is in Kineto's layout; the fast scan must vouch for it"
    assert load_trace(path, scope).events.equals(fast.events)
    full = activities_from_document(read_trace_json(path), str(path), scope)
    assert fast.events.equals(full.events)
    assert fast.device_name == full.device_name


def test_other_layouts_take_the_full_parse_with_the_same_result(shared_traces: Path, tmp_path: Path) -> None:
    path = shared_traces / "a100_sampled_rank0.json.gz"
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(json.loads(gzip.decompress(path.read_bytes())), separators=(",", ":")))
    raw = compact.read_bytes()
    assert scan_gpu_activities(raw, "compact", "all") is None
    assert load_trace(compact, "all").events.equals(load_trace(path, "all").events)
    assert load_trace(compact).events.equals(load_trace(path).events)


def test_a_correlation_on_an_unknown_event_category_takes_the_full_parse(shared_traces: Path,
                                                                        tmp_path: Path) -> None:
    # The full parse lets any CPU-side event with a correlation count as a launch; the fast scan
    # knows only some categories, so a correlation elsewhere must make it step aside.
    text = gzip.decompress((shared_traces / "a100_alexnet_train.json.gz").read_bytes())
    assert text.count(b'"cat": "cuda_sync"') == 41
    renamed = tmp_path / "renamed.json"
    renamed.write_bytes(text.replace(b'"cat": "cuda_sync"', b'"cat": "cuda_sync_v2"'))
    assert scan_gpu_activities(read_trace_bytes(renamed), str(renamed), "steps") is None
    full = activities_from_document(read_trace_json(renamed), str(renamed), "steps")
    assert load_trace(renamed).events.equals(full.events)


def _nanosecond_rankless_copy(source: Path, target: Path) -> Path:
    """The trace as newer PyTorch versions write it: timestamps and durations as floats with
    nanosecond digits; and without distributedInfo (no rank). Kineto's layout is kept."""
    text = gzip.decompress(source.read_bytes()).decode()
    counter = itertools.count(1)
    text = re.sub(r'"(ts|dur)": ([0-9]+)(?=[,}\s])',
                  lambda m: f'"{m[1]}": {m[2]}.{next(counter) * 379 % 1000:03d}', text)
    text = re.sub(r'\s*"distributedInfo": \{[^{}]*\},', "", text)
    target.write_bytes(gzip.compress(text.encode()))
    return target


@pytest.mark.slow
def test_nanosecond_float_durations_are_summed_exactly_without_rank_info(shared_traces: Path,
                                                                          tmp_path: Path) -> None:
    path = _nanosecond_rankless_copy(shared_traces / "v100_diff_test.json.gz", tmp_path / "ns.json.gz")
    raw = read_trace_bytes(path)
    assert b"distributedInfo" not in raw and b'"dur": 25.' in raw
    fast = scan_gpu_activities(raw, str(path), "steps")
    assert fast is not None  # still Kineto's layout: the fast path reads it
    assert fast.events.equals(activities_from_document(read_trace_json(path), str(path), "steps").events)
    table = kernel_table(load_trace(path).events)
    reference = _hta_rule_totals(path)
    _assert_totals(table, reference)
    # HTA would floor every duration to whole µs; detprof keeps the fractions
    floored = collections.defaultdict(float)
    for row in fast.events.itertuples(index=False):
        floored[row.name] += math.floor(row.dur_us)
    assert all(row.total_us >= floored[row.name] for row in table.itertuples(index=False))
    assert table["total_us"].sum() - sum(floored.values()) > 0.4 * len(fast.events)  # fractions average 0.5


@pytest.mark.parametrize("trace", ["a100_alexnet_train", "v100_diff_test", "a100_sampled_rank0"])
def test_kernel_totals_equal_exact_sums_on_real_traces(shared_traces: Path, trace: str) -> None:
    path = shared_traces / f"{trace}.json.gz"
    activities = load_trace(path, "all")
    assert activities.kind == "gpu"
    table = kernel_table(activities.events)
    _assert_totals(table, _exact_kernel_totals(path))
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["total_us"].is_monotonic_decreasing


def test_real_trace_device_name_and_categories(shared_traces: Path) -> None:
    activities = load_trace(shared_traces / "a100_alexnet_train.json.gz")
    assert activities.device_name == "NVIDIA A100-PG509-200"
    table = kernel_table(activities.events)
    by_name = dict(zip(table["name"], table["category"], strict=True))
    assert by_name["Memcpy HtoD (Pageable -> Device)"] == "memory copy/set"
    categories = set(table["category"])
    assert {"conv forward", "gemm", "elementwise", "pooling"} <= categories


def test_per_kernel_statistics_are_right() -> None:
    events = pd.DataFrame({"name": ["a", "a", "a", "b"], "dur_us": [1.0, 2.0, 6.0, 3.0]})
    table = kernel_table(events).set_index("name")
    a = table.loc["a"]
    assert (a.calls, a.total_us, a.mean_us, a.median_us, a.min_us, a.max_us) == (3, 9.0, 3.0, 2.0, 1.0, 6.0)
    assert a.std_us == pytest.approx(((4 + 1 + 9) / 3) ** 0.5)  # population std
    assert a.share == pytest.approx(0.75) and table.loc["b"].std_us == 0.0


def test_top_n_adds_an_others_row_that_keeps_totals() -> None:
    events = pd.DataFrame({"name": [f"k{i}" for i in range(5) for _ in range(i + 1)],
                           "dur_us": [float(i + 1) for i in range(5) for _ in range(i + 1)]})
    table = kernel_table(events)
    top = top_kernels(table, 2)
    assert list(top["name"]) == ["k4", "k3", "(others)"]
    others = top.iloc[-1]
    assert others.calls == 1 + 2 + 3 and others.total_us == pytest.approx(1 + 4 + 9)
    assert top["total_us"].sum() == pytest.approx(table["total_us"].sum())
    assert top["share"].sum() == pytest.approx(1.0)
    assert len(top_kernels(table, 10)) == 5  # no others row when nothing is left over


def test_diff_reports_added_removed_and_changed_sorted_by_change() -> None:
    a = kernel_table(pd.DataFrame({"name": ["conv", "gone", "same"], "dur_us": [10.0, 5.0, 1.0]}))
    b = kernel_table(pd.DataFrame({"name": ["conv", "new", "same"], "dur_us": [30.0, 2.0, 1.0]}))
    diff = diff_tables(a, b)
    assert list(diff["name"]) == ["conv", "gone", "new", "same"]
    rows = diff.set_index("name")
    assert rows.loc["conv"].status == "changed" and rows.loc["conv"].delta_us == 20.0
    assert rows.loc["gone"].status == "removed" and rows.loc["gone"].calls_b == 0
    assert rows.loc["new"].status == "added" and rows.loc["new"].total_us_a == 0.0


@pytest.mark.parametrize(("name", "category", "nondeterministic"), [
    ("void cudnn::detail::wgrad_alg0_engine<float, 128, 6, 7, 3, 3, 5, false>(int)", "conv weight-grad", True),
    ("sm80_xmma_dgrad_implicit_gemm_indexed_tf32f32_tf32f32_f32_nhwckrsc_nchw", "conv data-grad", None),
    ("sm80_xmma_fprop_implicit_gemm_indexed_tf32f32_tf32f32_f32_nhwckrsc_nchw", "conv forward", False),
    ("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4>(Params)", "gemm", False),
    ("void at::native::(anonymous namespace)::atomic_adaptive_average_gradinput<float>(float*)", "pooling", True),
    ("Memset (Device)", "memory copy/set", False),
    ("aten::mkldnn_convolution", "conv forward", False),
    ("aten::convolution_backward", "conv backward", False),
    ("aten::native_batch_norm_backward", "normalization", False),
    ("something_never_seen", "other", None),
    ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64>, true>(Params)",
     "attention", True),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>, false>(Flash_fwd_params)", "attention", False),
    ("fmha_cutlassB_f32_aligned_64x64_k64_sm80(PyTorchMemEffAttention::AttentionBackwardKernel)", "attention", None),
    ("fmha_cutlassF_f32_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)", "attention", False),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention", False),
    ("void at::native::(anonymous namespace)::embedding_backward_feature_kernel<float, float, long>(long*)",
     "embedding", False),
    ("aten::embedding_dense_backward", "embedding", False),
    ("split_embedding_codegen_forward_unweighted_kernel", "other", None),  # FBGEMM's tables, not nn.Embedding
    ("aten::rms_norm", "normalization", False),
    ("aten::gelu_backward", "elementwise", False),
    # TensorFlow on a CPU: Grappler fuses a convolution with its bias and activation into _FusedConv2D
    ("_FusedConv2D", "conv forward", None),
    ("_MklNativeFusedConv2D", "conv forward", None),
    ("_FusedDepthwiseConv2dNative", "conv forward", None),
    ("Conv2DBackpropFilter", "conv weight-grad", None),
])
def test_catalog_classifies_known_kernels(name: str, category: str, nondeterministic: bool | None) -> None:
    assert load_catalog().classify(name) == (category, nondeterministic)


def test_catalog_patterns_ignore_case_with_and_without_escapes() -> None:
    catalog = parse_catalog("pattern,category,nondeterministic,note\n"
                            "Wgrad_Alg\\d,conv weight-grad,yes,\n"      # an escape: matched with IGNORECASE
                            "[A-Z]+GEMM_[0-9],gemm,no,\n"                # no escape: matched on lowercased text
                            "^memcpy,memory copy/set,no,\n")
    assert catalog.classify("void cudnn::WGRAD_ALG0_engine<float>(int)") == ("conv weight-grad", True)
    assert catalog.classify("void cudnn::wgrad_algX(int)") == ("other", None)
    assert catalog.classify("ampere_sgemm_128x64_nn") == ("gemm", False)
    assert catalog.classify("AMPERE_SGEMM_1") == ("gemm", False)
    assert catalog.classify("Memcpy HtoD (Pageable -> Device)") == ("memory copy/set", False)
    assert catalog.classify("void foo<Memcpy>()") == ("other", None)


def test_catalog_rejects_unknown_categories() -> None:
    with pytest.raises(ValueError, match="row 2: category 'convolution' is not one of"):
        parse_catalog("pattern,category,nondeterministic,note\nconv,convolution,no,\n")


def _write_trace(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"schemaVersion": 1, "traceEvents": events}))
    return path


def test_cpu_trace_uses_self_time_per_thread(tmp_path: Path) -> None:
    def op(name: str, ts: float, dur: float, tid: int = 1) -> dict[str, object]:
        return {"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur}

    trace = _write_trace(tmp_path / "cpu.json", [
        op("aten::conv2d", 0.0, 10.0), op("aten::convolution", 1.0, 8.0), op("aten::mkldnn_convolution", 2.0, 6.5),
        op("aten::relu", 12.0, 2.0), op("aten::add_", 0.5, 4.0, tid=2),
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0.0, "dur": 20.0},
    ])
    activities = load_trace(trace)
    assert activities.kind == "cpu"
    totals = dict(zip(activities.events["name"], activities.events["dur_us"], strict=True))
    assert totals == {"aten::conv2d": 2.0, "aten::convolution": 1.5, "aten::mkldnn_convolution": 6.5,
                      "aten::relu": 2.0, "aten::add_": 4.0}


def test_a_real_cpu_profile_breaks_down_into_conv_gemm_and_optimizer_work(tmp_path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 14 * 14, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    prof.export_chrome_trace(str(tmp_path / "real.json"))
    activities = load_trace(tmp_path / "real.json")
    table = kernel_table(activities.events)
    calls = dict(zip(table["name"], table["calls"], strict=True))
    assert calls["aten::mkldnn_convolution"] == 2 and calls["aten::convolution_backward"] == 2
    assert {"conv forward", "conv backward", "gemm"} <= set(category_table(table)["category"])
    # self times never exceed the profiled wall span
    span = activities.events["ts_us"].max() - activities.events["ts_us"].min()
    assert 0 < table["total_us"].sum() <= span + activities.events["dur_us"].max()


def test_bad_traces_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(TraceError, match="is not a JSON Chrome trace"):
        load_trace(tmp_path / "junk.json")
    with pytest.raises(TraceError, match="cannot read trace"):
        load_trace(tmp_path / "missing.json")
    empty = _write_trace(tmp_path / "empty.json", [{"ph": "X", "cat": "user_annotation", "name": "x", "ts": 0,
                                                    "dur": 1}])
    with pytest.raises(TraceError, match="no GPU kernels, memory copies or CPU ops"):
        load_trace(empty)


def test_gzip_traces_cut_short_corrupt_or_in_several_members(shared_traces: Path, tmp_path: Path) -> None:
    compressed = (shared_traces / "a100_alexnet_train.json.gz").read_bytes()
    (tmp_path / "cut.json.gz").write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(TraceError, match="is a truncated gzip file"):
        load_trace(tmp_path / "cut.json.gz")
    (tmp_path / "corrupt.json.gz").write_bytes(compressed[:10] + bytes(200))
    with pytest.raises(TraceError, match="starts like gzip but is not valid gzip data"):
        load_trace(tmp_path / "corrupt.json.gz")
    # gzip allows several members back to back (e.g. a file written in pieces); all of them count
    text = gzip.decompress(compressed)
    middle = len(text) // 2
    (tmp_path / "members.json.gz").write_bytes(gzip.compress(text[:middle]) + gzip.compress(text[middle:]))
    whole = load_trace(shared_traces / "a100_alexnet_train.json.gz")
    assert load_trace(tmp_path / "members.json.gz").events.equals(whole.events)


def test_gunzip_falls_back_to_the_standard_zlib(shared_traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    from detprof.kernels import trace

    compressed = (shared_traces / "a100_sampled_rank0.json.gz").read_bytes()
    fast = trace.gunzip(compressed)
    monkeypatch.setattr(trace, "_inflate", zlib)
    assert trace.gunzip(compressed) == fast == gzip.decompress(compressed)
    with pytest.raises(EOFError):
        trace.gunzip(compressed[:-50])


def test_short_name_drops_void_and_arguments() -> None:
    assert short_name("void at::native::reduce_kernel<512, 1>(at::native::ReduceOp<float>)") == \
        "at::native::reduce_kernel<512, 1>"
    assert short_name("void at::native::(anonymous namespace)::CatArrayBatchedCopy<float, 1>(float*, int)") == \
        "at::native::(anonymous namespace)::CatArrayBatchedCopy<float, 1>"
    assert short_name("x" * 100, width=10) == "x" * 9 + "…"
    assert short_name("Memcpy HtoD (Pinned -> Device)") == "Memcpy HtoD (Pinned -> Device)"


# Kernel families of current stacks, with the category and nondeterminism each must get. Names as
# the stacks write them (Hopper cuBLAS, torch.compile/Inductor, ROCm Tensile, FBGEMM and ATen's
# scatter kernels from the A100/V100 traces in tests/data/traces).
SCATTER_ADD = ("void at::native::_scatter_gather_elementwise_kernel<128, 4, at::native::_cuda_scatter_gather_internal_"
               "kernel<true, float>::operator()<at::native::ReduceAdd>(at::TensorIterator&, long, long, long, "
               "at::native::ReduceAdd const&)::{lambda(int)#1}>(int, at::native::_cuda_scatter_gather_internal_kernel"
               "<true, float>::operator()<at::native::ReduceAdd>(at::TensorIterator&, long, long, long, at::native::"
               "ReduceAdd const&)::{lambda(int)#1})")
FAMILIES = {
    "hopper-cublas": ("NVIDIA H100 80GB HBM3", [
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNN", "gemm", False),
        ("nvjet_hsh_192x192_64x5_2x1_v_bz_coopB_NTN", "gemm", False)]),
    "torch-compile": ("NVIDIA H100 80GB HBM3", [
        ("triton_poi_fused_add_relu_threshold_backward_0", "elementwise", False),
        ("triton_red_fused__native_batch_norm_legit_functional_convolution_backward_1", "reduction", False),
        ("triton_per_fused_mean_2", "reduction", False),
        ("triton_tem_fused_mm_3", "gemm", False),
        ("triton_poi_fused_index_put_new_zeros_4", "other", True)]),
    "rocm-tensile": ("AMD Instinct MI300X", [
        ("Cijk_Alik_Bljk_SB_MT128x128x16_MI32x32x2x1_SN_1LDSB0_APM1_ABV0_ACED0_AF0EM1_AF1EM1_AMAS3", "gemm", False),
        ("Cijk_Ailk_Bjlk_HHS_BH_MT64x64x32_MI32x32x8x1_SN_1LDSB1_APM1_ABV0", "gemm", False)]),
    "fbgemm": ("NVIDIA A100-PG509-200", [
        ("void fbgemm_gpu::permute_2D_lengths_kernel<int>(int, int, int const*, int const*, int*)",
         "memory copy/set", False),
        ("void fbgemm_gpu::(anonymous namespace)::_compute_FP8_quantize_cuda_kernel<float>(float const*, float "
         "const*, int, int, unsigned char*, bool)", "elementwise", False),
        ("void at::native::vectorized_elementwise_kernel<4, fbgemm_gpu::_float_to_hfp8_gpu(at::Tensor const&, long, "
         "long, double)::{lambda(float)#1}, at::detail::Array<char*, 2> >(int, fbgemm_gpu::_float_to_hfp8_gpu("
         "at::Tensor const&, long, long, double)::{lambda(float)#1}, at::detail::Array<char*, 2>)", "elementwise",
         False),
        ("void fbgemm_gpu::_offsets_range_cuda_kernel<long>(long, long, long const*, long*)", "other", None)]),
    "atomics": ("NVIDIA A100-PG509-200", [
        (SCATTER_ADD, "reduction", True),
        ("void at::native::indexFuncLargeIndex<float, int, unsigned int, 1, 1, -2, true, at::native::(anonymous "
         "namespace)::ReduceAdd>(at::cuda::detail::TensorInfo<float, unsigned int>, long)", "reduction", True),
        (SCATTER_ADD.replace("ReduceAdd", "TensorAssign"), "memory copy/set", None)]),
}


@pytest.mark.parametrize("layout", ["compact", "expanded"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_kernel_families_of_current_stacks_are_classified_in_both_trace_layouts(family: str, layout: str,
                                                                                 tmp_path: Path) -> None:
    from tests.kineto_traces import write_kineto_trace

    device, kernels = FAMILIES[family]
    path = write_kineto_trace(tmp_path / f"{family}.json", [(name, 10.0 + i) for i, (name, _, _) in
                                                            enumerate(kernels)], layout, device)
    fast = load_trace(path)
    assert fast.parser == "kineto-scan", f"the fast scan did not vouch for the {layout} layout"
    full = activities_from_document(read_trace_json(path), str(path))
    assert fast.events.equals(full.events) and fast.device_name == full.device_name == device
    rows = kernel_table(fast.events).set_index("name")
    for name, category, nondeterministic in kernels:
        assert (rows.loc[name, "category"], rows.loc[name, "nondeterministic"]) == (category, nondeterministic), name


def test_a_real_trace_of_this_torch_takes_its_layout_into_account(tmp_path: Path) -> None:
    """torch 2.13's profiler writes one field per line, torch 2.11's (the GPU machine's) puts
    ``"ph": "X", "cat": ...`` on one line; a CPU trace holds no GPU work, so the scan declines it and
    the full parse reads its CPU ops, in either layout."""
    from torch.profiler import ProfilerActivity, profile

    model = torch.nn.Linear(8, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(torch.randn(4, 8)).sum().backward()
    prof.export_chrome_trace(str(tmp_path / "cpu213.json"))
    text = (tmp_path / "cpu213.json").read_text()
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    expanded, compact = '"ph": "X",\n    "cat": "cpu_op"' in text, '"ph": "X", "cat": "cpu_op"' in text
    assert (expanded, compact) == ((True, False) if version >= (2, 13) else (False, True)), text[:400]
    activities = load_trace(tmp_path / "cpu213.json")
    assert activities.kind == "cpu" and activities.parser == "json"


def test_a_gpu_trace_without_kernel_events_is_an_error_unless_cpu_ops_are_asked_for(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detprof.cli import app
    from detprof.kernels import KernelLessGpuTraceError
    from tests.kineto_traces import write_kineto_trace

    path = write_kineto_trace(tmp_path / "range.json", [("sm90_xmma_gemm_f32f32", 50.0)] * 3, "compact",
                              cpu_ops=[("aten::mm", 20.0), ("aten::relu", 5.0)], kernel_events=False)
    with pytest.raises(KernelLessGpuTraceError, match="GPU program's trace .* without any GPU kernel"):
        load_trace(path)
    cli = CliRunner()
    result = cli.invoke(app, ["kernels", "--trace", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "NVIDIA H100 80GB HBM3" in result.stderr and "--cpu-ops" in result.stderr
    assert cli.invoke(app, ["import", str(path), "--db", str(tmp_path / "x.sqlite")]).exit_code == 2
    listed = cli.invoke(app, ["kernels", "--trace", str(path), "--cpu-ops", "--json"])
    assert listed.exit_code == 0
    report = json.loads(listed.stdout)
    assert report["kind"] == "cpu" and {k["name"] for k in report["kernels"]} == {"aten::mm", "aten::relu"}
