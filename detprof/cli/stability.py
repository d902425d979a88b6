"""``detprof stability``: train N models under a noise variant and measure how much they differ."""

from __future__ import annotations

import typer

from detprof.cli.app import app
from detprof.cli.common import DB_OPTION, JSON_OPTION, emit, fail, user_errors
from detprof.render.progress import progress_once_valid
from detprof.runner.config import CPU_THREADS

STABILITY_TASKS = "digits, cifar10, cifar100, celeba"


@app.command()
def stability(
    task: str = typer.Option("digits", help=f"Dataset and network. Accepted: {STABILITY_TASKS}."),
    variant: str = typer.Option("algo+impl", help="Noise left in: algo+impl (none controlled), algo (deterministic "
                                                  "mode), impl (all seeds fixed), control (both), order-only."),
    runs: int = typer.Option(10, help="Models in the experiment; stored runs are kept and only the missing ones "
                                      "are trained."),
    fix: str | None = typer.Option(None, help="Hold these algorithmic sources fixed instead of the variant's "
                                              "choice: comma-separated from init, shuffle, augment, dropout, or none."),
    order_only: bool = typer.Option(False, "--order-only", help="The data-order experiment: everything fixed but "
                                                                "the shuffling order (variant order-only); combine "
                                                                "with --batch-size, up to the full training set."),
    bn: bool | None = typer.Option(None, "--bn/--no-bn", help="BatchNorm in the small CNN (default: the recipe's)."),
    epochs: int | None = typer.Option(None, help="Override the recipe's epochs."),
    batch_size: int | None = typer.Option(None, help="Override the recipe's batch size."),
    lr: float | None = typer.Option(None, help="Override the recipe's learning rate (Adam)."),
    arch: str | None = typer.Option(None, help="small-cnn, resnet18-cifar or resnet18 (default: the task's "
                                               "recipe: small-cnn for digits and cifar10, resnet18-cifar for "
                                               "cifar100, resnet18 for celeba)."),
    data_dir: str | None = typer.Option(None, help="Folder with the dataset: CIFAR's binary distribution "
                                                   "(cifar-10-batches-bin/ or cifar-100-binary/) or CelebA's "
                                                   "standard layout."),
    target: str | None = typer.Option(None, help="CelebA: the attribute to learn (default Blond_Hair, the "
                                                 "attribute of the paper's Table 3), or `all` for the 40 "
                                                 "attributes pooled."),
    gpu: str = typer.Option("auto", help="Where to train: GPU alias (v100, a100, h100, ...), index, `cpu`, or "
                                         "`auto` (first GPU, else CPU), as for overhead."),
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads per run (default: {CPU_THREADS})."),
    run_timeout: float = typer.Option(3600.0, help="Seconds before a run is killed and the experiment stops there."),
    db: str | None = DB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Train N models under a noise variant and measure how much they differ (churn, L2, per-class spread).

    Recipes: digits, small CNN, 40 epochs of Adam (3e-3, x0.1 at 3/4 of training), dropout 0.1 and
    ±1-pixel shifts. CIFAR follows the paper's Appendix B (200 epochs, batch 128, 4e-4 decayed x0.1
    every 50 epochs, crop and flip); Adam and the 4-pixel padding are detprof's assumptions, since
    the appendix names neither. CelebA: ResNet-18, 20 epochs, batch 128, 1e-3 decayed x0.1 every 5.
    """
    from detprof.cli.lists import parse_fixed_sources
    from detprof.stability import run_stability

    if order_only:
        if variant not in ("algo+impl", "order-only") or fix is not None:
            fail("--order-only sets the variant and the fixed sources itself; drop --variant and --fix")
        variant = "order-only"
    with progress_once_valid(f"{task} {variant}: epochs") as show:

        def advance(run_index: int, total_runs: int, epoch: int, total_epochs: int) -> None:
            show(f"{task} {variant}: run {run_index + 1}/{total_runs}, epoch {epoch}",
                 total=total_runs * total_epochs, completed=run_index * total_epochs + epoch)

        with user_errors():
            summary = run_stability(task, variant, runs, parse_fixed_sources(fix), epochs, batch_size, lr, bn, db,
                                    data_dir, advance, arch,
                                    gpu=gpu, threads=threads, run_timeout_s=run_timeout, target=target)
    emit("stability", summary, json_output)
    if summary["failed"]:
        raise typer.Exit(1)
