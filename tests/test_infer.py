"""detprof infer: the inference grid. The comparison on arrays with known answers (quick); the
rows on models whose answers are known whatever the CPU (a table lookup: no reduction anywhere,
so nothing may depend on the batch, the padding or the cache; the same plus 1e-3 times the batch
size: the batch row must see it); a real Hugging Face model built from a config written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.infer.compare import BITWISE, LOGITS_DIFFER, TOKENS_DIFFER, Decoding, compare, one_ulp_control
from detprof.infer.prompts import random_prompts, read_prompts
from detprof.infer.rows import DEFAULT_ROWS, REFERENCE, ROW_BY_NAME, ROWS, GridOptions
from detprof.infer.spec import DecodeSettings, InferenceSpec, InferenceSpecError, ModelSource

MODELS = Path(__file__).parent / "data" / "inference" / "models.py"
TEXT_PROMPTS = MODELS.with_name("prompts.txt")
runner = CliRunner()


def _decoding(seed: int = 0, prompts: int = 3, steps: int = 5, vocab: int = 11) -> Decoding:
    generator = np.random.default_rng(seed)
    logits = generator.standard_normal((prompts, steps, vocab)).astype(np.float32)
    return Decoding(logits.argmax(-1), logits)


def test_equal_decodings_are_bitwise_and_a_one_ulp_change_is_caught() -> None:
    reference = _decoding()
    same = compare("same", {}, reference, Decoding(reference.tokens.copy(), reference.logits.copy()))
    assert same["verdict"] == BITWISE and same["bitwise_prompts"] == 3 and same["max_abs_logit_diff"] == 0.0
    control = one_ulp_control(reference)
    assert control["caught"] and 0 < float(control["max_abs_logit_diff"]) < 1e-6  # type: ignore[arg-type]


def test_a_token_that_parts_is_found_and_only_the_steps_up_to_it_are_compared() -> None:
    reference = _decoding()
    logits, tokens = reference.logits.copy(), reference.tokens.copy()
    tokens[1, 2] = (tokens[1, 2] + 1) % 11
    logits[1, 2, tokens[1, 2]] = logits[1, 2].max() + 0.5  # the logit that chose the other token
    logits[1, 3:] += 1000.0  # after the parting the contexts differ: not compared
    cell = compare("parted", {}, reference, Decoding(tokens, logits))
    assert cell["verdict"] == TOKENS_DIFFER and cell["identical_prompts"] == 2
    assert cell["first_divergent_token"] == {"min": 2.0, "median": 2.0}
    assert cell["logits_equal_before_divergence"] is True and cell["argmax_flips"] == 1
    assert 0.5 <= cell["max_abs_logit_diff"] < 100  # the +1000 after the parting is not counted


def test_a_nan_never_reads_as_equal_nor_as_no_difference_and_signed_zeros_differ() -> None:
    reference = _decoding()
    logits = reference.logits.copy()
    logits[0, 0, 3] = np.nan
    cell = compare("nan", {}, reference, Decoding(reference.tokens, logits))
    assert cell["verdict"] == LOGITS_DIFFER and cell["nonfinite_mismatches"] == 1 and cell["bitwise_prompts"] == 2
    both = compare("nan both", {}, Decoding(reference.tokens, logits), Decoding(reference.tokens, logits.copy()))
    assert both["verdict"] == BITWISE  # the same NaN bits on both sides
    zeros = reference.logits.copy()
    zeros[2, 1, 0] = 0.0
    negative = zeros.copy()
    negative[2, 1, 0] = -0.0
    assert compare("zeros", {}, Decoding(reference.tokens, zeros), Decoding(reference.tokens, negative))["verdict"] \
        == LOGITS_DIFFER


def test_each_row_changes_one_factor_against_its_baseline() -> None:
    options = GridOptions(batch_sizes=(2, 4), padding=3, prefill_chunk=5, dtypes=("bfloat16",),
                          attentions=("eager",), threads=2)
    factors = {"batch": {"batch_size"}, "position": {"reverse_order"}, "padding": {"padding_side", "extra_padding"},
               "kv-cache": {"kv_cache"}, "chunked-prefill": {"prefill_chunk"}, "attention": {"attention"},
               "dtype": {"dtype"}, "threads": {"threads"}, "run": set(), "prefix-reuse": {"prefix"},
               "compile": {"compiled"}, "tf32": {"tf32"}}
    assert set(factors) == set(ROW_BY_NAME)
    for row in ROWS:
        baseline = row.baseline(options)
        for settings in row.configurations(options):
            changed = {name for name, value in settings.changes().items() if baseline.changes().get(name) != value}
            assert changed <= factors[row.name] and (changed or row.fresh_process), (row.name, changed)
    assert ROW_BY_NAME["threads"].configurations(GridOptions(threads=None)) == []  # one CPU: no other count


def test_the_spec_crosses_as_json_and_refuses_a_field_it_does_not_know() -> None:
    spec = InferenceSpec(ModelSource(arch="gpt2-small", vocab=512), ((1, 2, 3), (4,)), 4,
                         (REFERENCE, DecodeSettings(batch_size=2, padding_side="right", extra_padding=1)), 0, 1, "cpu")
    assert InferenceSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    with pytest.raises(InferenceSpecError, match="batch_sise"):
        InferenceSpec.from_json({**spec.to_json(), "settings": [{"batch_sise": 2}]})


def test_prompts_are_seeded_and_a_prompts_file_is_checked(tmp_path: Path) -> None:
    first = random_prompts(5, 3, 9, 50, seed=1)
    assert first == random_prompts(5, 3, 9, 50, seed=1) != random_prompts(5, 3, 9, 50, seed=2)
    assert all(3 <= len(p) <= 9 and all(1 <= t < 50 for t in p) for p in first)
    lines = tmp_path / "prompts.jsonl"
    lines.write_text("[1, 2, 3]\n[4, 5]\n")
    assert read_prompts(str(lines), 10).ids == ((1, 2, 3), (4, 5))
    listed = tmp_path / "prompts.json"
    listed.write_text("[[7], [8, 9]]")
    assert read_prompts(str(listed), 10).ids == ((7,), (8, 9))
    from detprof.errors import ArgumentError

    with pytest.raises(ArgumentError, match="prompt 2 has 12, not a token id from 0 to 9"):
        read_prompts(str(listed.with_name("bad.json")) if False else _write(tmp_path, "[[1], [12]]"), 10)


def _byte_level_tokenizer(folder: Path) -> Path:
    """A byte-level BPE tokenizer (GPT-2's kind) trained here on the prompts file, saved as a
    tokenizer.json in ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train([str(TEXT_PROMPTS)], trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_text_prompts_are_tokenized_by_a_local_tokenizer_and_refused_without_one(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from detprof.errors import ArgumentError

    folder = _byte_level_tokenizer(tmp_path / "tokenizer")
    expected = [Tokenizer.from_file(str(folder / "tokenizer.json")).encode(line).ids
                for line in TEXT_PROMPTS.read_text().splitlines()]
    read = read_prompts(str(TEXT_PROMPTS), 512, str(folder))
    assert [list(p) for p in read.ids] == expected and all(len(p) > 5 for p in expected)
    assert read.tokenizer == folder / "tokenizer.json" and "text tokenized by" in read.describe("p.txt")
    as_json = _write(tmp_path, json.dumps(TEXT_PROMPTS.read_text().splitlines()))
    assert read_prompts(as_json, 512, str(folder / "tokenizer.json")).ids == read.ids
    assert read_prompts(_write(tmp_path, "[1, 2, 3]\n[4]"), 10).ids == ((1, 2, 3), (4,))  # ids: no tokenizer
    with pytest.raises(ArgumentError, match="holds text; give --tokenizer"):
        read_prompts(str(TEXT_PROMPTS), 512)
    with pytest.raises(ArgumentError, match=r"prompt 1 has \d+, not a token id from 0 to 99 \(the tokenizer's "):
        read_prompts(str(TEXT_PROMPTS), 100, str(folder))
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "tokenizer.json").write_text('{"model": ')
    with pytest.raises(ArgumentError, match="tokenizer.json cannot be read"):
        read_prompts(str(TEXT_PROMPTS), 512, str(tmp_path / "damaged"))
    with pytest.raises(ArgumentError, match="holds no tokenizer.json"):
        read_prompts(str(TEXT_PROMPTS), 512, str(tmp_path))


def _write(folder: Path, text: str) -> str:
    path = folder / "written.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("args", "words"), [
    (["--rows", "batch,nope"], "--rows 'batch,nope' is not accepted; use some of run, batch"),
    (["--arch", "resnet18"], "--arch 'resnet18' is not a causal language model detprof can decode"),
    (["--batch-sizes", "1,8"], "--batch-sizes 1,8 is not accepted; use sizes from 2"),
    (["--prompts", "2", "--batch-sizes", "4"], "is not accepted with 2 prompts"),
    (["--config", "missing-folder"], "--config 'missing-folder' does not exist"),
    (["--model", f"{MODELS}:lookup"], "--model needs --num-classes"),
    (["--config", "CONFIG", "--num-classes", "5"], "--num-classes is not accepted with --config"),
    (["--dtypes", "float64"], "--dtypes 'float64' is not accepted"),
    (["--prompt-tokens", "9,3"], "--prompt-tokens 9,3 is not accepted"),
    (["--new-tokens", "0"], "--new-tokens 0 is not accepted"),
    (["--shared-prefix", "0"], "--shared-prefix 0 is not accepted; use 1 to"),
    (["--rows", "compile,every"], "--rows 'compile,every' is not accepted"),
    (["--rows", "tf32"], "--rows tf32 cannot run on cpu: tf32: its factor exists on a GPU only"),
    (["--mode", "fast"], "--mode 'fast' is not accepted; use one of default, deterministic, batch-invariant"),
    (["--cost", "--mode", "batch-invariant,batch-invariant"], "are not accepted; use the baseline then one or more"),
    (["--arch", "gpt2-small", "--prompt-tokens", "1000", "--new-tokens", "100"], "exceed the model's 1024 positions"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "vocab_size": 64}))
    args = [str(config) if a == "CONFIG" else a for a in args]
    result = runner.invoke(app, ["infer", *args, "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.sqlite").exists()


def test_a_config_that_needs_remote_code_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "custom", "vocab_size": 64,
                                                      "auto_map": {"AutoModelForCausalLM": "modeling.Custom"}}))
    result = runner.invoke(app, ["infer", "--config", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "needs remote code (its auto_map names AutoModelForCausalLM)" in result.stderr
    assert json.loads(result.stdout)["error"]["exit_code"] == 2


def _grid(tmp_path: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["infer", *args, "--prompts", "4", "--new-tokens", "6", "--batch-sizes", "2,4",
                                 "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


INVARIANT_ROWS = "run,batch,position,padding,kv-cache,chunked-prefill,prefix-reuse,threads"
ONE_PROCESS_ROWS = INVARIANT_ROWS.removeprefix("run,")  # the controls need no second process


@pytest.mark.slow
def test_a_model_without_reductions_passes_every_row_it_cannot_fail(tmp_path: Path) -> None:
    """Known answer: each token's logits are a table row, so every row but dtype is bitwise equal on any
    CPU; the dtype row (float32 vs bfloat16 tables) must differ."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:lookup", "--num-classes", "64",
                           "--rows", INVARIANT_ROWS + ",dtype")
    verdicts = {row["row"]: row["verdict"] for row in document["rows"]}
    assert verdicts == {**dict.fromkeys(INVARIANT_ROWS.split(","), "bitwise"), "dtype": "logits differ"}
    assert code == 1 and document["differing_rows"] == ["dtype"] and document["sensitivity"]["caught"]
    assert document["document_version"] == 1 and document["run_id"] is not None


@pytest.mark.slow
@pytest.mark.parametrize(("model", "differing"), [
    ("length_dependent", ["batch", "padding", "kv-cache", "chunked-prefill", "prefix-reuse"]),
    ("threads_dependent", ["threads"])])
def test_each_row_sees_the_one_thing_it_changes_and_no_other(model: str, differing: list[str],
                                                             tmp_path: Path) -> None:
    """Negative controls for the other rows: a model whose logits read the forward's token count fails
    exactly the padding, KV-cache, chunked-prefill and prefix-reuse rows, and the batch row (a batch
    pads its shorter prompts), not the position row; one that reads the thread count, exactly the
    threads row."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:{model}", "--num-classes", "64", "--rows", ONE_PROCESS_ROWS)
    assert code == 1 and document["differing_rows"] == differing
    assert all(row["verdict"] == LOGITS_DIFFER for row in document["rows"] if row["row"] in differing)


@pytest.mark.slow
def test_the_compile_row_sees_what_compiling_changes_and_refuses_a_model_dynamo_skips(tmp_path: Path) -> None:
    """Known answer: the lookup compiles to the same bits; a model that adds 1e-3 only inside a compiled
    graph differs by exactly that, says what Dynamo compiled, and --locate-op names its add; a model
    Dynamo is told to skip runs eagerly under torch.compile, so the row could not see a difference and
    the grid refuses it."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:lookup", "--num-classes", "64", "--rows", "compile")
    assert code == 0 and document["rows"][0]["verdict"] == BITWISE
    assert document["rows"][0]["cells"][0]["compiled"]["graphs"] >= 1
    code, document = _grid(tmp_path, "--model", f"{MODELS}:compile_dependent", "--num-classes", "64",
                           "--rows", "compile", "--locate-op")
    cell = document["rows"][0]["cells"][0]
    assert code == 1 and cell["verdict"] == LOGITS_DIFFER and cell["identical_prompts"] == 4
    assert cell["max_abs_logit_diff"] == pytest.approx(1e-3, rel=1e-3) and "not_located" not in cell
    # located with a graph break at every module: the model's own add, inside the compiled graph
    assert cell["op"]["module"] == "(model)" and cell["op"]["kind"] == "root-cause"
    assert "aten::add" in cell["op"]["ops"] and "graph break at every module" in cell["op"]["probed"]
    skipped = runner.invoke(app, ["infer", "--model", f"{MODELS}:never_compiled", "--num-classes", "64", "--rows",
                                  "compile", "--prompts", "4", "--new-tokens", "2", "--db", str(tmp_path / "r.sqlite")])
    assert skipped.exit_code == 2 and "torch.compile compiled no graph of the model" in skipped.stderr


@pytest.mark.slow
def test_a_hugging_face_model_from_a_local_config_runs_every_row_and_is_stored(tmp_path: Path) -> None:
    """A Qwen2-style config written here (a model type transformers ships, random weights from the seed):
    every row runs and is stored; which rows differ depends on the CPU's kernels, so only what holds
    everywhere is asserted: the run row (two processes, same seed) and the 1-ulp control."""
    folder = tmp_path / "tiny-qwen2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}))
    code, document = _grid(tmp_path, "--config", str(folder))
    assert [row["row"] for row in document["rows"]] == [name for name in DEFAULT_ROWS if name != "tf32"]
    assert document["rows_left_out"] == {}  # the default rows are this device's: tf32 is not asked for on a CPU
    assert document["workload"]["class"] == "Qwen2ForCausalLM" and document["workload"]["parameters"] > 0
    assert {row["row"]: row["verdict"] for row in document["rows"]}["run"] == BITWISE
    assert document["sensitivity"]["caught"] and code == (1 if document["differing_rows"] else 0)
    listed = runner.invoke(app, ["runs", "--db", str(tmp_path / "r.sqlite"), "--json"])
    stored = json.loads(listed.stdout)
    assert [run["kind"] for run in stored["runs"]] == ["inference"]


@pytest.mark.slow
def test_a_config_folder_tokenizes_text_prompts_with_its_own_tokenizer(tmp_path: Path) -> None:
    """A model folder holding its tokenizer.json (as save_pretrained leaves it) decodes a text file's
    lines as the tokenizer encodes them; the document says which tokenizer."""
    folder = _byte_level_tokenizer(tmp_path / "tiny-llama")
    (folder / "config.json").write_text(json.dumps({**TINY_CONFIGS["llama"], "vocab_size": 320}))
    code, document = _grid(tmp_path, "--config", str(folder), "--prompts-file", str(TEXT_PROMPTS), "--rows", "run")
    assert code == 0 and document["prompts"]["count"] == 3
    assert f"text tokenized by {folder / 'tokenizer.json'}" in document["prompts"]["source"]


@pytest.mark.slow
def test_a_model_whose_forward_takes_no_cache_is_refused_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["infer", "--model", f"{MODELS}:no_cache", "--num-classes", "16", "--rows", "batch",
                                 "--prompts", "2", "--batch-sizes", "2", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and "its forward takes no cache" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


TINY_CONFIGS = {
    "gpt2": {"model_type": "gpt2", "vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128},
    "llama": {"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 128},
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_the_batch_invariant_mode_passes_the_batch_position_and_padding_rows_bitwise(family: str,
                                                                                    tmp_path: Path) -> None:
    """GPT-2 (Conv1D's addmm, LayerNorm) and Llama (linear, RMSNorm's mean, rotary, grouped-query SDPA)
    configs written here: under the mode, a prompt's logits do not depend on its batch, its position,
    its padding or a prefix's cache computed apart, and the 1-ulp control is still caught; the mode
    says which ops it took over."""
    folder = tmp_path / family
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIGS[family]))
    code, document = _grid(tmp_path, "--config", str(folder), "--mode", "batch-invariant",
                           "--rows", "run,batch,position,padding,prefix-reuse")
    assert {row["row"]: row["verdict"] for row in document["rows"]} == dict.fromkeys(
        ["run", "batch", "position", "padding", "prefix-reuse"], BITWISE)
    assert code == 0 and document["mode"] == "batch-invariant" and document["sensitivity"]["caught"]
    took_over = set(document["replaced_ops"])
    assert {"scaled_dot_product_attention"} <= took_over
    assert ({"addmm", "layer_norm"} if family == "gpt2" else {"linear", "mean"}) <= took_over


@pytest.mark.slow
def test_the_batch_invariant_mode_cannot_hide_a_model_that_reads_its_batch(tmp_path: Path) -> None:
    """Negative control for the mode: the batch-dependent model still fails the batch row under it."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:batch_dependent", "--num-classes", "64",
                           "--rows", "batch", "--mode", "batch-invariant")
    assert code == 1 and document["differing_rows"] == ["batch"]


@pytest.mark.slow
def test_the_cost_of_the_mode_is_measured_in_pairs_with_intervals_and_stored(tmp_path: Path) -> None:
    """The cost protocol on the table-lookup model: every batch size gets its pairs, a ratio inside its
    interval, tokens/s of both modes, and the published anchors beside it; the run is stored."""
    result = runner.invoke(app, ["infer", "--model", f"{MODELS}:lookup", "--num-classes", "64", "--cost",
                                 "--batch-sizes", "1,2", "--pairs", "2", "--new-tokens", "4",
                                 "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert result.exit_code == 3, result.stderr  # two pairs: ratios, but no interval (a CI needs three)
    document = json.loads(result.stdout)
    assert [row["batch_size"] for row in document["rows"]] == [1, 2]
    for row in document["rows"]:
        assert row["pairs"] == 2 and row["decode_ratio"] > 0 and row["decode_ci"] == [None, None]
        assert set(row["modes"]) == {"default", "batch-invariant"}
        assert all(figures["decode_tokens_per_s"] > 0 for figures in row["modes"].values())
    assert {anchor["system"] for anchor in document["anchors"]} >= {"SGLang --enable-deterministic-inference"}
    assert document["run_id"] is not None


def test_the_mismatch_measures_and_their_distribution_on_known_log_probs() -> None:
    """Known answer: 100 tokens, of which 90 equal and the last ten off by 0.01 to 0.1: the quantiles
    of |Δ log-prob| are 0 up to the median and 0.1 at the max; 90% of tokens are equal; a ratio
    threshold of 0.001 counts the ten."""
    from detprof.infer.mismatch import mismatch

    sampler = np.log(np.linspace(0.1, 0.9, 100)).reshape(4, 25)
    trainer = sampler.copy()
    trainer.flat[90:] -= np.arange(1, 11) / 100
    measured = mismatch(sampler, trainer, 0.001)
    quantiles = measured["abs_logprob_diff_quantiles"]
    assert list(quantiles) == ["p50", "p90", "p99", "p99.9", "max"] and quantiles["p50"] == 0.0
    assert quantiles["max"] == pytest.approx(0.1) == measured["max_abs_logprob_diff"]
    assert measured["equal_token_share"] == 0.9 and not measured["bitwise_equal"]
    assert measured["ratio_outside_share"] == pytest.approx(0.1) and measured["tokens"] == 100
    same = mismatch(sampler, sampler.copy(), 0.001)
    assert same["bitwise_equal"] and same["equal_token_share"] == 1.0 and same["abs_logprob_diff_quantiles"]["max"] == 0


@pytest.mark.slow
def test_the_cost_times_each_mode_asked_for_against_the_default_in_rotated_rounds(tmp_path: Path) -> None:
    """--mode batch-invariant,deterministic with --cost: one row per batch size and mode, each mode's
    figures from its own processes; three rounds give every row an interval around its ratio."""
    result = runner.invoke(app, ["infer", "--model", f"{MODELS}:lookup", "--num-classes", "64", "--cost",
                                 "--mode", "batch-invariant,deterministic", "--batch-sizes", "2", "--pairs", "3",
                                 "--new-tokens", "4", "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["modes"] == ["default", "batch-invariant", "deterministic"]
    assert [(row["batch_size"], row["treatment"]) for row in document["rows"]] == [(2, "batch-invariant"),
                                                                                 (2, "deterministic")]
    for row in document["rows"]:
        low, high = row["decode_ci"]
        assert low is not None and high is not None and low <= row["decode_ratio"] <= high
        assert set(row["modes"]) == {"default", "batch-invariant", "deterministic"}


@pytest.mark.slow
def test_locate_op_records_the_run_row_in_two_new_processes(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Known answer: a model offset by a number from the entropy pool when built differs from process to
    process, and two new processes recording the first differing token name its own add. Control: a
    model offset in the grid's second process only; the two recording processes agree, and the cell
    says the difference did not recur instead of naming a module or passing."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:run_dependent", "--num-classes", "64",
                           "--rows", "run", "--locate-op")
    cell = document["rows"][0]["cells"][0]
    assert code == 1 and cell["verdict"] == LOGITS_DIFFER and cell["first_difference"] == {"prompt": 0, "step": 0}
    assert cell["op"]["module"] == "(model)" and cell["op"]["kind"] == "root-cause" and "aten::add" in cell["op"]["ops"]
    assert "two new processes" in cell["op"]["probed"]
    monkeypatch.setenv("DETPROF_TEST_COUNTER", str(tmp_path / "built"))
    code, document = _grid(tmp_path, "--model", f"{MODELS}:differs_in_one_process", "--num-classes", "64",
                           "--rows", "run", "--locate-op")
    cell = document["rows"][0]["cells"][0]
    assert code == 1 and cell["max_abs_logit_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert "op" not in cell and "did not recur" in cell["not_located"]
    assert (tmp_path / "built").read_text() == "5"  # the probe, two grid processes, two recording processes


@pytest.mark.slow
def test_the_position_and_attention_rows_see_what_they_change_and_pass_what_they_do_not(tmp_path: Path) -> None:
    """Known answers and negative controls for the two rows the lookup models above cannot fail: a
    model adding 1e-3 times a prompt's row in its batch fails the position row (the batch of 4
    reversed moves rows 0-3 to 3-0: up to 0.003); a lookup with an attention switch passes the
    attention row, and the same adding 1e-3 under eager attention fails it by exactly that."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:position_dependent", "--num-classes", "64",
                           "--rows", "position")
    cell = document["rows"][0]["cells"][0]
    assert code == 1 and cell["verdict"] == LOGITS_DIFFER
    assert cell["max_abs_logit_diff"] == pytest.approx(3e-3, rel=1e-4)
    code, document = _grid(tmp_path, "--model", f"{MODELS}:attention_switch", "--num-classes", "64",
                           "--rows", "attention")
    assert code == 0 and document["rows"][0]["verdict"] == BITWISE
    code, document = _grid(tmp_path, "--model", f"{MODELS}:attention_dependent", "--num-classes", "64",
                           "--rows", "attention")
    cell = document["rows"][0]["cells"][0]
    assert code == 1 and cell["label"] == "eager attention"
    assert cell["max_abs_logit_diff"] == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.slow
def test_a_row_whose_factor_this_device_lacks_is_left_out_and_said_to_be(tmp_path: Path) -> None:
    """TF32 is a GPU's factor: on a CPU the tf32 row is left out, named in the document with why, and the
    other rows asked for run; the threads row, a CPU's factor, runs here."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:threads_dependent", "--num-classes", "64",
                           "--rows", "batch,threads,tf32")
    assert [row["row"] for row in document["rows"]] == ["batch", "threads"]
    assert document["rows_left_out"] == {"tf32": "its factor exists on a GPU only"}
    assert code == 1 and document["differing_rows"] == ["threads"]


@pytest.mark.slow
def test_the_deterministic_mode_sets_the_switches_and_says_how_they_read_after_decoding(tmp_path: Path) -> None:
    """--mode deterministic: the switches are read back in the process after decoding, and an op without a
    deterministic implementation (max-unpool, in a lookup that keeps its values) is named; the default
    mode reports neither (it leaves PyTorch's own switches), and the model passes its rows either way."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:unpooling", "--num-classes", "64", "--rows", "batch",
                           "--mode", "deterministic")
    assert code == 0 and document["mode"] == "deterministic"
    switches = document["switches"]
    assert switches["deterministic_algorithms"] is True and switches["cudnn_benchmark"] is False
    assert switches["cudnn_deterministic"] is True
    assert [op for op in document["nondeterministic_ops"] if "max_unpool" in op], document["nondeterministic_ops"]
    code, document = _grid(tmp_path, "--model", f"{MODELS}:unpooling", "--num-classes", "64", "--rows", "batch")
    assert code == 0 and document["switches"] == {} and document["nondeterministic_ops"] == []


@pytest.mark.slow
def test_sampler_and_trainer_differ_in_bfloat16_and_a_remedy_makes_them_bitwise_equal(tmp_path: Path) -> None:
    """A Llama config written here: bfloat16 sampling against float32 scoring differs (bfloat16 weights
    cannot give float32's logits); the batch-invariant mode with one dtype makes the log-probs
    bitwise equal although the sampler decodes through a cache in batches of 8 and the trainer
    scores in one forward per micro-batch of 4."""
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIGS["llama"]))
    result = runner.invoke(app, ["infer", "--config", str(folder), "--compare", "sampler,trainer", "--prompts", "8",
                                 "--new-tokens", "6", "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    pairs = {row["remedy"]: row for row in document["pairs"]}
    given = pairs["as given"]
    assert not given["bitwise_equal"] and given["max_abs_logprob_diff"] > 1e-4 and given["tokens"] == 48
    invariant = pairs["batch-invariant mode in both, the same dtype (float32)"]
    assert invariant["bitwise_equal"] and invariant["max_abs_logprob_diff"] == 0.0
    assert document["ranked"][0] == invariant["remedy"]


@pytest.mark.slow
def test_a_model_without_reductions_gives_the_trainer_the_samplers_log_probs(tmp_path: Path) -> None:
    """Known answer: with a table lookup, scoring in one forward gives exactly the logits decoding gave, so
    every pair with one dtype is bitwise equal and every pair with two dtypes is not."""
    result = runner.invoke(app, ["infer", "--model", f"{MODELS}:lookup", "--num-classes", "64", "--compare",
                                 "sampler,trainer", "--prompts", "8", "--new-tokens", "5", "--db",
                                 str(tmp_path / "r.sqlite"), "--json"])
    document = json.loads(result.stdout)
    for row in document["pairs"]:
        one_dtype = row["sampler"].get("dtype", "float32") == row["trainer"].get("dtype", "float32")
        assert row["bitwise_equal"] == one_dtype, row["remedy"]


@pytest.mark.slow
def test_a_model_made_batch_dependent_fails_the_batch_row_alone_and_locate_op_names_its_add(tmp_path: Path) -> None:
    """Negative control: 1e-3 times the batch size on every logit. The batch row sees it (0.001 at batch 2,
    0.003 at batch 4, the argmax unmoved); the rows that keep the batch size do not. The term is added
    in the model's own forward, after the table: --locate-op finds the table's row equal and the model's
    output row different while its input matched."""
    code, document = _grid(tmp_path, "--model", f"{MODELS}:batch_dependent", "--num-classes", "64",
                           "--rows", ONE_PROCESS_ROWS, "--locate-op")
    assert code == 1 and document["differing_rows"] == ["batch"]
    cells = {row["row"]: row["cells"] for row in document["rows"]}
    assert [cell["verdict"] for cell in cells["batch"]] == [LOGITS_DIFFER] * 2
    assert [round(cell["max_abs_logit_diff"], 4) for cell in cells["batch"]] == [0.001, 0.003]
    assert all(cell["identical_prompts"] == 4 for cell in cells["batch"])
    for cell in cells["batch"]:
        assert cell["first_difference"] == {"prompt": 0, "step": 0}
        assert cell["op"]["module"] == "(model)" and cell["op"]["kind"] == "root-cause"
        assert "aten::add" in cell["op"]["ops"] and "aten::embedding" not in cell["op"]["ops"]
    assert "op" not in cells["position"][0]  # bitwise: nothing to locate


@pytest.mark.slow
def test_locate_op_names_a_module_for_every_differing_row_of_a_real_model(tmp_path: Path) -> None:
    """A Llama config: which rows differ depends on the CPU's kernels, but each differing configuration
    of a one-process row gets a module (the embedding for bfloat16: its rounded table)."""
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIGS["llama"]))
    code, document = _grid(tmp_path, "--config", str(folder), "--rows", "batch,padding,kv-cache,prefix-reuse,dtype",
                           "--locate-op")
    for row in document["rows"]:
        for cell in row["cells"]:
            if cell["verdict"] != BITWISE:
                assert cell["op"] and cell["op"]["module"], (row["row"], cell)
    dtype = next(row for row in document["rows"] if row["row"] == "dtype")["cells"][0]
    assert dtype["op"]["module"] == "model.embed_tokens" and dtype["op"]["kind"] == "root-cause"


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_the_grid_decodes_as_hugging_face_generate_does_bit_for_bit(family: str) -> None:
    """The grid's decoding is what users get from ``generate`` (greedy, left padding, the KV cache on
    or off): the same tokens and bitwise the same logits, alone and in left-padded batches of 4. So a
    row's difference is one a user of ``generate`` meets, not an artefact of detprof's loop."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from detprof.backends.torch.inference.decode import decode
    from detprof.infer.prompts import random_prompts

    config = dict(TINY_CONFIGS[family])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(config.pop("model_type"), **config),
                                             attn_implementation="sdpa").float().eval()
    prompts = random_prompts(4, 5, 12, 256, seed=0)
    for batch, cache in ((1, True), (4, True), (4, False)):
        ours = decode(model, prompts, 6, DecodeSettings(batch_size=batch, kv_cache=cache), 0, torch.device("cpu"))
        tokens, logits = [], []
        for start in range(0, len(prompts), batch):
            group = prompts[start:start + batch]
            width = max(len(p) for p in group)
            ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in group])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group])
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=cache,
                                 pad_token_id=0, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
            tokens.append(out.sequences[:, width:].numpy())
            logits.append(torch.stack(out.logits, dim=1).float().numpy())
        assert (np.concatenate(tokens) == ours.tokens).all(), (batch, cache)
        assert (np.concatenate(logits).view(np.uint32) == ours.logits.view(np.uint32)).all(), (batch, cache)
