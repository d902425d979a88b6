"""``detprof infer``: is greedy decoding of a causal language model reproducible and batch
invariant here, row by row (detprof.infer). The grid is stored as a run (kind inference)."""

from __future__ import annotations

import typer

from detprof.check.limits import RUN_TIMEOUT_S
from detprof.cli.app import app
from detprof.cli.check import conclude
from detprof.cli.common import DB_HELP, JSON_OPTION, user_errors
from detprof.cli.lists import comma_parts, parse_batch_sizes, parse_mapping, parse_names, parse_range
from detprof.errors import require
from detprof.infer.rows import DEFAULT_ROWS, ROW_NAMES, GridOptions
from detprof.render.progress import progress_once_valid
from detprof.runner.config import CPU_THREADS


@app.command()
def infer(
    arch: str | None = typer.Option(None, help="A causal language model of `detprof zoo`: gpt2-small (default) or "
                                               "llama-small, built as its Hugging Face twin at the zoo's sizes."),
    config: str | None = typer.Option(None, help="A Hugging Face config.json, or a folder holding one (and its "
                                                 "weights, if any: else random weights from --seed). Nothing is "
                                                 "downloaded; a config that needs remote code is refused."),
    model: str | None = typer.Option(None, help="Your own causal LM: MODULE:FUNCTION, where FUNCTION(vocab) returns "
                                                "an nn.Module called as a Hugging Face model (input_ids, "
                                                "attention_mask, position_ids, a cache) returning .logits. This runs "
                                                "your code, in a child process."),
    num_classes: int | None = typer.Option(None, help="The vocabulary of --arch (default the arch's own) or of "
                                                      "--model (required there)."),
    rows: str | None = typer.Option(None, help=f"The grid's rows: some of {', '.join(ROW_NAMES)}, or all (default "
                                               f"all but {', '.join(n for n in ROW_NAMES if n not in DEFAULT_ROWS)}, "
                                               f"which compiles for minutes on a CPU, and those whose factor this "
                                               f"device lacks: threads on a GPU, tf32 on a CPU)."),
    prompts: int = typer.Option(8, help="Seeded random prompts to decode."),
    prompt_tokens: str = typer.Option("8,32", help="Their lengths, MIN,MAX tokens (each drawn uniformly)."),
    prompts_file: str | None = typer.Option(None, help="Prompts to decode instead: token ids (a JSON list of lists, "
                                                       "or one JSON list a line), or text (a JSON list of strings, "
                                                       "one JSON string a line, or a .txt file's lines) with "
                                                       "--tokenizer."),
    tokenizer: str | None = typer.Option(None, help="The tokenizer of a text --prompts-file: a tokenizer.json, or a "
                                                    "folder holding one (default: the --config folder's own). "
                                                    "Special tokens are added as the tokenizer's own call adds "
                                                    "them."),
    new_tokens: int | None = typer.Option(None, help="Tokens decoded greedily per prompt (default 16; 32 with "
                                                     "--cost)."),
    batch_sizes: str | None = typer.Option(None, help="The batch row's batch sizes, each compared with a prompt alone "
                                                      "(default 4,8; the position row reverses the largest); with "
                                                      "--cost, the batch sizes timed (default 1,8)."),
    padding: int | None = typer.Option(None, help="The padding row's extra pad tokens, left then right (default 8)."),
    prefill_chunk: int | None = typer.Option(None, help="The chunked-prefill row's chunk, in tokens (default 8)."),
    shared_prefix: int | None = typer.Option(None, help="The prefix-reuse row's shared prefix, in seeded random "
                                                        "tokens put before every prompt (default 16)."),
    dtypes: str | None = typer.Option(None, help="The dtype row's dtypes, each compared with float32: bfloat16 "
                                                 "(default), float16."),
    attention: str | None = typer.Option(None, help="The attention row's implementations, compared with sdpa: eager "
                                                    "(default)."),
    locate_op: bool = typer.Option(False, "--locate-op", help="For each differing configuration, decode its first "
                                                              "differing prompt again in both settings (the run "
                                                              "row: in two new processes) and name the first module "
                                                              "whose output for that token differs while its input "
                                                              "matched, with its ops."),
    cost: bool = typer.Option(False, "--cost", help="Instead of the grid: what the batch-invariant mode (or the "
                                                    "modes of --mode) costs, as rounds of fresh processes (default "
                                                    "and each mode, the order rotated) decoding the same batch; "
                                                    "decode and prefill time ratios with 95% CIs, per batch size."),
    pairs: int | None = typer.Option(None, help="With --cost: rounds per batch size, each a fresh process per mode "
                                                "(default 5)."),
    compare: str | None = typer.Option(None, help="sampler,trainer: instead of the grid, the log-probs an RL sampler "
                                                  "computes for its own sampled tokens against a trainer's for the "
                                                  "same tokens, then each known remedy."),
    sampler: str | None = typer.Option(None, help="With --compare: the sampler, NAME=VALUE pairs of dtype, batch, "
                                                  "attention, cache (default dtype=bfloat16,batch=8,cache=on)."),
    trainer: str | None = typer.Option(None, help="With --compare: the trainer, NAME=VALUE pairs of dtype, "
                                                  "micro-batch, attention (default dtype=float32,micro-batch=4)."),
    record: str | None = typer.Option(None, help="Instead of the grid: decode the reference (each prompt alone, "
                                                 "unpadded, KV cache, SDPA, float32) once and write it as a record "
                                                 "to this file (.json or .json.gz), to compare with `detprof "
                                                 "compare` (docs/records.md)."),
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads of the reference (default: {CPU_THREADS}); "
                                                  f"the threads row compares it with the other of 1 and 2."),
    mode: str = typer.Option("default", help="default (PyTorch's own ops); deterministic (the training mode's "
                                              "switches: torch.use_deterministic_algorithms, cuDNN, the cuBLAS "
                                              "workspace); or batch-invariant: the ops whose reduction order could "
                                              "follow the batch, padding or cache replaced by fixed-order ones "
                                              "(detprof.backends.torch.inference.invariant). With --cost: the "
                                              "modes timed against the default, e.g. "
                                              "batch-invariant,deterministic (default batch-invariant)."),
    gpu: str = typer.Option("cpu", help="cpu (default), auto, a GPU index or alias."),
    seed: int = typer.Option(0, help="Seed of the random weights and prompts."),
    timeout: float = typer.Option(RUN_TIMEOUT_S, help="Seconds each inference process may take before it is killed."),
    db: str | None = typer.Option(None, help=DB_HELP + " The grid is stored as a run (kind inference)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Is greedy decoding reproducible and batch invariant here? One row per factor.

    Each row changes one thing against a baseline (each prompt alone, unpadded, KV cache on, SDPA,
    float32): run to run, batch size, position in the batch, padding, KV cache, chunked prefill,
    prefix reuse, attention implementation, dtype, CPU threads, and (asked for) torch.compile.
    Per configuration: prompts whose continuations are identical, whose logits are bitwise equal,
    the first divergent token, the largest |logit difference|. Exit 0 when every row is bitwise
    equal, 1 when a row differs, 3 when the comparison failed to see a 1-ulp change, 2 for bad input.

    With --cost: what the batch-invariant mode (or --mode's modes) costs against the default
    (decode and prefill, paired fresh processes, 95% CIs), beside the published costs of serving systems; exit 0 with
    intervals, 3 without. With --compare sampler,trainer: a sampler's log-probs against a
    trainer's on the same tokens, and the remedies; exit 0 when the two agree bitwise, 1 when not.
    """
    from detprof.check.record import check_verdict_store
    from detprof.infer.run import PromptChoice, run_inference_grid

    with user_errors():
        shortest, longest = parse_range("--prompt-tokens", prompt_tokens)
        choice = PromptChoice(count=prompts, shortest=shortest, longest=longest, file=prompts_file,
                              tokenizer=tokenizer)
        grid_only = {"--rows": rows, "--padding": padding,
                     "--locate-op": True if locate_op else None,
                     "--prefill-chunk": prefill_chunk, "--shared-prefix": shared_prefix, "--dtypes": dtypes,
                     "--attention": attention}
        if cost:
            given = [option for option, value in grid_only.items() if value is not None]
            require(not given, f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the "
                               f"grid; --cost times the default against the modes of --mode")
        else:
            require(pairs is None, "--pairs is an option of --cost (the grid runs two processes)")
        require(compare in (None, "sampler,trainer"),
                f"--compare {compare!r} is not accepted; use sampler,trainer")
        require(not (cost and compare), "--cost and --compare are alternatives; give one")
        if record is not None:
            from detprof.records.format import require_writable

            given = [option for option, value in {**grid_only, "--pairs": pairs, "--batch-sizes": batch_sizes,
                                                  "--cost": True if cost else None, "--compare": compare}.items()
                     if value is not None]
            require(not given, f"--record decodes the reference once; drop {', '.join(given)}")
            require_writable(record, "--record")
        require(compare is not None or (sampler is None and trainer is None),
                "--sampler and --trainer are options of --compare sampler,trainer")
        if compare:
            given = [option for option, value in {**grid_only, "--pairs": pairs,
                                                  "--mode": mode if mode != "default" else None}.items()
                     if value is not None]
            require(not given, f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the "
                               f"grid or --cost, not of --compare")
        check_verdict_store(db)
        if compare:
            from detprof.infer.mismatch import DEFAULT_SAMPLER, DEFAULT_TRAINER, run_sampler_trainer, side_settings

            sampling = side_settings("--sampler", parse_mapping("--sampler", sampler), DEFAULT_SAMPLER)
            scoring = side_settings("--trainer", parse_mapping("--trainer", trainer), DEFAULT_TRAINER)
            with progress_once_valid("infer --compare") as show:
                compared = run_sampler_trainer(arch, config, num_classes, model, sampling, scoring, choice,
                                               16 if new_tokens is None else new_tokens, seed, threads, gpu, timeout,
                                               on_progress=show)
            conclude("inference-mismatch", compared, db, json_output)
        if record is not None:
            from detprof.cli.records import record_decoding

            record_decoding(arch, config, num_classes, model, choice, new_tokens, seed, threads, gpu, timeout, mode,
                            record, db, json_output)
        if cost:
            from detprof.infer.cost import DEFAULT_COST_BATCH_SIZES, DEFAULT_PAIRS, run_inference_cost

            sizes = parse_batch_sizes(batch_sizes) if batch_sizes else DEFAULT_COST_BATCH_SIZES
            with progress_once_valid("infer --cost") as show:
                treatments = tuple(comma_parts(mode)) if mode != "default" else ("batch-invariant",)
                measured = run_inference_cost(arch, config, num_classes, model, sizes,
                                              DEFAULT_PAIRS if pairs is None else pairs, choice,
                                              32 if new_tokens is None else new_tokens, seed, threads, gpu, timeout,
                                              ("default", *treatments), on_progress=show)
            conclude("inference-cost", measured, db, json_output)
        defaults = GridOptions()
        options = GridOptions(batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes else defaults.batch_sizes,
                              padding=defaults.padding if padding is None else padding,
                              prefill_chunk=defaults.prefill_chunk if prefill_chunk is None else prefill_chunk,
                              shared_prefix=defaults.shared_prefix if shared_prefix is None else shared_prefix,
                              dtypes=tuple(comma_parts(dtypes)) if dtypes is not None else defaults.dtypes,
                              attentions=defaults.attentions if attention is None else tuple(comma_parts(attention)))
        with progress_once_valid("infer") as show:
            document = run_inference_grid(arch, config, num_classes, model,
                                          parse_names(rows) if rows is not None else None, options, choice,
                                          16 if new_tokens is None else new_tokens, seed, threads, gpu, timeout,
                                          mode, locate_op,
                                          on_progress=show)
    conclude("inference", document, db, json_output)

