"""Stability experiments for real: digits, small CNN, training in fresh processes on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from detprof.cli import app
from detprof.stability.data import load_digits
from detprof.stability.variants import FIXED_SEED, SOURCES, VariantError, resolve_variant, source_seeds

runner = CliRunner()
QUICK = ["--task", "digits", "--epochs", "1", "--json"]


def _stability(args: list[str]) -> dict:
    result = runner.invoke(app, ["stability", *args])
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_variants_fix_exactly_the_sources_they_name() -> None:
    assert resolve_variant("algo+impl").fixed == () and resolve_variant("algo+impl").mode == "default"
    assert resolve_variant("algo").mode == "deterministic"
    assert resolve_variant("impl").fixed == SOURCES and resolve_variant("control").mode == "deterministic"
    assert resolve_variant("algo", ("shuffle", "init")).fixed == ("init", "shuffle")
    seeds = [source_seeds(resolve_variant("algo", ("init",)), run) for run in range(3)]
    assert all(s["init"] == FIXED_SEED for s in seeds)
    assert len({s["shuffle"] for s in seeds}) == 3 and len({s["dropout"] for s in seeds}) == 3
    assert seeds[0]["shuffle"] != seeds[0]["augment"]  # sources draw from different streams
    with pytest.raises(VariantError, match="accepted: init, shuffle, augment, dropout"):
        resolve_variant("algo", ("init", "labels"))
    with pytest.raises(VariantError, match="a list of noise sources, not the text 'init'"):
        resolve_variant("algo", "init")


def test_digits_split_is_fixed_and_stratified() -> None:
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert np.array_equal(a.y_test, b.y_test) and a.x_train.max() <= 1.0
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}


@pytest.mark.slow
def test_control_is_bitwise_reproducible_and_algo_impl_is_not(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    control = _stability([*QUICK, "--variant", "control", "--runs", "2", "--db", db])
    assert control["runs"] == 2 and control["churn"] == 0.0 and control["l2"] == 0.0
    assert control["accuracy_std"] == 0.0 and control["mode"] == "deterministic"
    noisy = _stability([*QUICK, "--variant", "algo+impl", "--runs", "2", "--db", db])
    assert noisy["churn"] > 0.0 and noisy["l2"] > 0.0
    assert 0.0 < noisy["accuracy_mean"] <= 1.0 and len(noisy["per_class_std"]) == 10
    # fixing every source by hand is the control experiment's seeding, in deterministic mode
    by_hand = _stability([*QUICK, "--variant", "algo", "--fix", "init,shuffle,augment,dropout", "--runs", "2",
                          "--db", db])
    assert by_hand["churn"] == 0.0 and by_hand["accuracies"] == control["accuracies"]


@pytest.mark.slow
def test_runs_are_added_not_redone_and_weights_load_safely(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    first = _stability([*QUICK, "--variant", "algo", "--runs", "2", "--db", str(db)])
    more = _stability([*QUICK, "--variant", "algo", "--runs", "3", "--db", str(db)])
    assert more["runs"] == 3 and more["accuracies"][:2] == first["accuracies"]
    weights = sorted((db.parent / "stability" / more["experiment"]).glob("run*/weights.pt"))
    assert len(weights) == 3
    state = torch.load(weights[0], map_location="cpu", weights_only=True)
    assert any(name.endswith("weight") for name in state)
    predictions = np.load(db.parent / "stability" / more["experiment"] / "run0" / "predictions.npy")
    assert predictions.shape == (more["test_examples"],)


@pytest.mark.slow
def test_batch_norm_and_threads_change_the_experiment(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    plain = _stability([*QUICK, "--variant", "control", "--runs", "2", "--db", db])
    with_bn = _stability([*QUICK, "--variant", "control", "--runs", "2", "--bn", "--db", db])
    assert plain["experiment"] != with_bn["experiment"] and with_bn["recipe"]["batch_norm"] is True
    assert plain["threads"] == 1 and plain["device"] == "cpu"  # one intra-op thread by default, as overhead
    two = _stability([*QUICK, "--variant", "control", "--runs", "2", "--threads", "2", "--db", db])
    assert two["threads"] == 2 and two["experiment"] != plain["experiment"]
    stored = json.loads((tmp_path / "stability" / two["experiment"] / "run0" / "result.json").read_text())
    assert stored["threads"] == 2 and stored["device"] == "cpu"


@pytest.mark.slow
def test_order_only_varies_nothing_but_the_shuffling_order(tmp_path: Path) -> None:
    summary = _stability([*QUICK, "--order-only", "--batch-size", "64", "--runs", "2", "--db", str(tmp_path / "o")])
    assert summary["variant"] == "order-only" and summary["mode"] == "deterministic"
    assert summary["fixed"] == ["init", "augment", "dropout"]
    # dropout and shifts stay on, drawn per example: fixed whatever the order (the paper fixed them)
    assert summary["recipe"]["dropout"] == 0.1 and summary["recipe"]["augment_shift"] == 1
    assert summary["recipe"]["steps"] == 45  # the default recipe's steps for 1 epoch (1,437 / 32), any batch
    assert summary["churn"] > 0.0  # a different order of mini-batches trains a different model
    # At full batch every run takes the same 45 steps over the same data, augmentation and dropout:
    # only the order of the sums differs, and the models differ by far less than mini-batch ones.
    full = _stability([*QUICK, "--order-only", "--batch-size", "1437", "--runs", "2", "--db", str(tmp_path / "o")])
    assert full["recipe"]["steps"] == 45 and full["churn"] < summary["churn"] and full["l2"] < summary["l2"] / 10
    clash = runner.invoke(app, ["stability", "--order-only", "--variant", "algo", "--db", str(tmp_path / "o")])
    assert clash.exit_code == 2 and "--order-only sets the variant" in clash.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "imagenet"], "unknown task 'imagenet'; accepted: digits, cifar10, cifar100"),
    (["--arch", "vgg19"], "--arch 'vgg19' is not accepted for stability"),
    (["--variant", "chaos"], "unknown variant 'chaos'; accepted: algo+impl, algo, impl, control"),
    (["--fix", "weights"], "unknown noise source 'weights'"),
    (["--runs", "0"], "--runs 0 is not accepted"),
    (["--runs", "1"], "--runs 1 is not accepted: at least 2 runs are needed to measure spread"),
    (["--epochs", "0"], "--epochs 0 is not accepted"),
    (["--lr", "-1"], "--lr -1.0 is not accepted"),
    (["--lr", "inf"], "--lr inf is not accepted; use a finite learning rate > 0"),
    (["--lr", "nan"], "--lr nan is not accepted"),
    (["--threads", "0"], "--threads 0 is not accepted"),
    (["--run-timeout", "0"], "--run-timeout 0.0 is not accepted"),
    (["--batch-size", "1438"], "--batch-size 1438 is not accepted for digits: its training set has 1,437 examples"),
    (["--gpu", "v100"], "GPU 'v100' is not on this machine"),
    (["--target", "Blond_Hair"], "--target applies to celeba only"),
])
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["stability", *args, "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _write_cifar(root: Path, task: str, train_records: int, test_records: int, seed: int = 0) -> Path:
    """Small files in the CIFAR binary format: label byte(s) then 3,072 pixel bytes per record."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-bin" if task == "cifar10" else "cifar-100-binary")
    folder.mkdir(parents=True)

    def records(count: int) -> bytes:
        if task == "cifar10":
            labels = rng.integers(0, 10, (count, 1), dtype=np.uint8)
        else:
            labels = np.stack([rng.integers(0, 20, count), rng.integers(0, 100, count)], axis=1).astype(np.uint8)
        return np.concatenate([labels, rng.integers(0, 256, (count, 3072), dtype=np.uint8)], axis=1).tobytes()

    if task == "cifar10":
        for i in range(1, 6):
            (folder / f"data_batch_{i}.bin").write_bytes(records(train_records))
        (folder / "test_batch.bin").write_bytes(records(test_records))
    else:
        (folder / "train.bin").write_bytes(records(train_records))
        (folder / "test.bin").write_bytes(records(test_records))
    return folder


def test_cifar_binary_files_are_read_channel_first_with_fine_labels(tmp_path: Path) -> None:
    from detprof.stability.data import load_task

    folder = _write_cifar(tmp_path / "c100", "cifar100", 6, 4)
    raw = np.fromfile(folder / "test.bin", dtype=np.uint8).reshape(4, 3074)
    data = load_task("cifar100", str(tmp_path / "c100"))
    assert data.x_train.shape == (6, 3, 32, 32) and data.num_classes == 100
    assert data.y_test.tolist() == raw[:, 1].tolist()  # the fine label, not the coarse one
    assert data.x_test[2, 1, 0, 5] == pytest.approx(raw[2, 2 + 1024 + 5] / 255.0)  # green plane, row 0, column 5
    cifar10 = load_task("cifar10", str(_write_cifar(tmp_path / "c10", "cifar10", 3, 2)))  # the folder itself
    assert cifar10.x_train.shape == (15, 3, 32, 32) and cifar10.num_classes == 10


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["small-cnn", "resnet18-cifar"])
def test_cifar_experiment_trains_both_networks(tmp_path: Path, arch: str) -> None:
    _write_cifar(tmp_path / "data", "cifar10", 4, 6)
    summary = _stability(["--task", "cifar10", "--data-dir", str(tmp_path / "data"), "--arch", arch,
                          "--variant", "control", "--runs", "2", "--epochs", "1", "--batch-size", "8", "--json",
                          "--db", str(tmp_path / "s.sqlite")])
    assert summary["recipe"]["arch"] == arch and summary["recipe"]["flip"] is True
    assert summary["recipe"]["augment_shift"] == 4 and summary["test_examples"] == 6
    assert summary["churn"] == 0.0 and summary["l2"] == 0.0  # control: reproducible with crop and flip too
    assert len(summary["per_class_std"]) == 10  # every class, even those absent from the 6 test images


@pytest.mark.parametrize(("setup", "message"), [
    ("none", "--data-dir is required for cifar10"),
    ("missing", "test_batch.bin not found"),
    ("truncated", "is not a cifar10 binary file"),
    ("label", "has label 200, outside 0..9"),
])
def test_missing_or_malformed_cifar_exits_2_with_the_layout(tmp_path: Path, setup: str, message: str) -> None:
    args = ["stability", "--task", "cifar10", "--db", str(tmp_path / "s.sqlite")]
    if setup != "none":
        folder = _write_cifar(tmp_path / "data", "cifar10", 2, 2)
        if setup == "missing":
            (folder / "test_batch.bin").unlink()
        elif setup == "truncated":
            (folder / "data_batch_3.bin").write_bytes(b"\x01" * 3072)
        else:
            record = bytearray((folder / "test_batch.bin").read_bytes())
            record[0] = 200
            (folder / "test_batch.bin").write_bytes(bytes(record))
        args += ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stdout
    line = result.stderr.strip()
    assert message in line and "cifar-10-batches-bin/" in line and len(line.splitlines()) == 1


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young").split()


def _write_celeba(root: Path, train: int = 8, test: int = 6) -> Path:
    """A small CelebA in the standard layout: aligned JPEGs, attribute list and partition list."""
    from PIL import Image

    rng = np.random.default_rng(1)
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(train + test)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
    values = rng.choice(["1", "-1"], size=(len(names), 40))
    values[: len(names) // 2, CELEBA_ATTRIBUTES.index("Male")] = "1"  # both sexes and ages in the test set
    values[train::2, CELEBA_ATTRIBUTES.index("Young")] = "1"
    values[train + 1::2, CELEBA_ATTRIBUTES.index("Young")] = "-1"
    values[train:, CELEBA_ATTRIBUTES.index("Male")] = ["1", "-1"] * (test // 2)
    lines = [str(len(names)), " ".join(CELEBA_ATTRIBUTES)] + [f"{n} " + " ".join(v) for n, v in zip(names, values,
                                                                                                      strict=True)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = [f"{n} {0 if i < train else 2}" for i, n in enumerate(names)]
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


def test_celeba_loads_the_standard_layout_and_caches_decoded_images(tmp_path: Path) -> None:
    from detprof.stability.data import load_task

    root = _write_celeba(tmp_path / "celeba")
    first = load_task("celeba", str(tmp_path), "all")  # the parent of celeba/ works too
    assert first.x_train.shape == (8, 3, 64, 64) and first.x_train.dtype == np.uint8
    assert first.y_test.shape == (6, 40) and set(np.unique(first.y_test)) <= {0, 1} and first.multilabel
    assert first.groups["Male"].sum() == 3 and (first.groups["Male"] ^ first.groups["Female"]).all()
    assert list((root / ".detprof-cache").glob("*.npy"))
    again = load_task("celeba", str(root))
    assert np.array_equal(first.x_test, again.x_test)
    # the default target: Blond_Hair alone, binary
    assert again.target == "Blond_Hair" and again.y_test.shape == (6,) and not again.multilabel
    assert np.array_equal(again.y_test, first.y_test[:, CELEBA_ATTRIBUTES.index("Blond_Hair")])


@pytest.mark.slow
def test_celeba_experiment_pooling_all_attributes_reports_subgroups(tmp_path: Path) -> None:
    _write_celeba(tmp_path / "celeba")
    summary = _stability(["--task", "celeba", "--data-dir", str(tmp_path / "celeba"), "--variant", "algo+impl",
                          "--runs", "2", "--epochs", "1", "--batch-size", "4", "--target", "all", "--json",
                          "--db", str(tmp_path / "s.sqlite")])
    assert summary["recipe"]["arch"] == "resnet18" and summary["test_examples"] == 6
    assert len(summary["per_class_std"]) == 40  # one spread per attribute
    groups = {g["group"]: g for g in summary["subgroups"]}
    assert list(groups) == ["All", "Male", "Female", "Young", "Old"]
    assert groups["Male"]["examples"] == 3 * 40  # 3 men in the test set, 40 attributes each
    assert groups["All"]["accuracy_std_ratio"] in (1.0, None)  # None (NaN) when the runs agree exactly
    human = runner.invoke(app, ["stability", "--task", "celeba", "--data-dir", str(tmp_path / "celeba"), "--runs",
                                "2", "--epochs", "1", "--batch-size", "4", "--target", "all",
                                "--db", str(tmp_path / "s.sqlite")])
    assert human.exit_code == 0 and "subgroups" in human.stdout and "Female" in human.stdout


@pytest.mark.parametrize(("damage", "message"), [
    ("partition", "list_eval_partition.txt not found"),
    ("values", "list_attr_celeba.txt line 3: expected an image name and 40 values of 1 or -1"),
    ("image", "cannot read image"),
])
def test_malformed_celeba_exits_2_with_the_layout(tmp_path: Path, damage: str, message: str) -> None:
    root = _write_celeba(tmp_path / "celeba")
    if damage == "partition":
        (root / "list_eval_partition.txt").unlink()
    elif damage == "values":
        lines = (root / "list_attr_celeba.txt").read_text().splitlines()
        lines[2] = lines[2].replace(" 1 ", " 2 ", 1).replace(" -1 ", " 2 ", 1)
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    else:
        (root / "img_align_celeba" / "000001.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["stability", "--task", "celeba", "--data-dir", str(root),
                                 "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.stdout
    line = result.stderr.strip()
    assert message in line and "img_align_celeba/" in line and len(line.splitlines()) == 1


@pytest.mark.slow
def test_celeba_learns_one_target_and_shows_table_3_counts_and_table_5_in_points(tmp_path: Path) -> None:
    root = _write_celeba(tmp_path / "celeba", train=12, test=6)
    attributes = (root / "list_attr_celeba.txt").read_text().splitlines()[2:14]  # the 12 training images
    blond, male, young = (CELEBA_ATTRIBUTES.index(a) + 1 for a in ("Blond_Hair", "Male", "Young"))
    rows = [line.split() for line in attributes]
    by_hand = {"All": [r for r in rows], "Male": [r for r in rows if r[male] == "1"],
               "Female": [r for r in rows if r[male] == "-1"], "Young": [r for r in rows if r[young] == "1"],
               "Old": [r for r in rows if r[young] == "-1"]}
    summary = _stability(["--task", "celeba", "--data-dir", str(root), "--variant", "algo+impl", "--runs", "2",
                          "--epochs", "1", "--batch-size", "4", "--json", "--db", str(tmp_path / "s.sqlite")])
    assert summary["target"] == "Blond_Hair" and summary["per_class_std"] is not None
    assert len(summary["per_class_std"]) == 2  # blond or not: one binary task, not 40 pooled
    counts = {row["group"]: row for row in summary["training_counts"]}
    for group, members in by_hand.items():
        assert counts[group]["positive"] == sum(r[blond] == "1" for r in members), group
        assert counts[group]["negative"] == sum(r[blond] == "-1" for r in members), group
    groups = {g["group"]: g for g in summary["subgroups"]}
    assert groups["Male"]["examples"] == 3 and groups["All"]["examples"] == 6  # test images, not image x attribute
    human = runner.invoke(app, ["stability", "--task", "celeba", "--data-dir", str(root), "--runs", "2", "--epochs",
                                "1", "--batch-size", "4", "--db", str(tmp_path / "s.sqlite")])
    assert human.exit_code == 0, human.stderr
    text = " ".join(human.stdout.split())  # titles wrap at 80 columns
    assert "(paper Table 3)" in text and "(paper Table 5)" in text and " pp (" in text
    bad = runner.invoke(app, ["stability", "--task", "celeba", "--data-dir", str(root), "--target", "Purple_Hair",
                              "--db", str(tmp_path / "s.sqlite")])
    assert bad.exit_code == 2 and "--target 'Purple_Hair' is not a CelebA attribute" in bad.stderr


@pytest.mark.slow
def test_fix_names_its_runs_for_what_they_are(tmp_path: Path) -> None:
    summary = _stability([*QUICK, "--variant", "algo+impl", "--fix", "init", "--runs", "2",
                          "--db", str(tmp_path / "s.sqlite")])
    assert summary["variant"] == "algo+impl[fixed: init]" and summary["fixed"] == ["init"]
    assert summary["paired_with"] is None  # a --fix run has no partner with its seeds
    none = _stability([*QUICK, "--variant", "control", "--fix", "none", "--runs", "2",
                       "--db", str(tmp_path / "s.sqlite")])
    assert none["variant"] == "control[fixed: none]"


@pytest.mark.slow
def test_algo_and_algo_impl_are_paired_run_for_run(tmp_path: Path) -> None:
    """By design run i of algo and of algo+impl share every seed; only the mode differs. On a CPU the
    mode changes nothing, so each pair is bit-identical: implementation noise measured directly."""
    db = str(tmp_path / "s.sqlite")
    first = _stability([*QUICK, "--variant", "algo+impl", "--runs", "2", "--db", db])
    assert first["paired_with"] is None  # the partner has no runs yet
    algo = _stability([*QUICK, "--variant", "algo", "--runs", "2", "--db", db])
    paired = algo["paired_with"]
    assert paired == {"variant": "algo+impl", "pairs": 2, "churn": 0.0, "l2": 0.0, "bitwise_identical_pairs": 2}
    assert algo["accuracies"] == first["accuracies"]
    human = runner.invoke(app, ["stability", *QUICK[:-1], "--variant", "algo", "--runs", "2", "--db", db])
    assert "paired with algo+impl" in human.stdout and "bit-identical weights in 2 of 2" in human.stdout


def test_augmentation_and_dropout_belong_to_the_example_not_its_place_in_the_batch() -> None:
    from detprof.backends.torch.stability_train import augmentation_plan, example_dropout_class

    offsets, flips = augmentation_plan(100, seed=7, epoch=3, max_shift=1, flip=True)
    again, flips_again = augmentation_plan(100, seed=7, epoch=3, max_shift=1, flip=True)
    assert torch.equal(offsets, again) and torch.equal(flips, flips_again)
    other_epoch, _ = augmentation_plan(100, seed=7, epoch=4, max_shift=1, flip=True)
    assert not torch.equal(offsets, other_epoch) and int(offsets.max()) == 2 and int(offsets.min()) == 0
    dropout = example_dropout_class()(0.5, examples=10, seed=1, layer=0).train()
    x = torch.ones(2, 64)
    dropout.example_ids = torch.tensor([3, 7])
    forward = dropout(x)
    dropout.example_ids = torch.tensor([7, 3])
    backward = dropout(x)
    assert torch.equal(forward[0], backward[1]) and torch.equal(forward[1], backward[0])
    assert set(forward.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept units scaled by 1/(1-p)
    dropout.epoch = 1
    dropout.example_ids = torch.tensor([3, 7])
    assert not torch.equal(dropout(x), forward)  # a new epoch, new masks
    assert torch.equal(dropout.eval()(x), x)


def test_the_learning_rate_schedule_counts_steps() -> None:
    from detprof.backends.torch.stability_train import training_steps
    from detprof.stability.experiment import DEFAULT_RECIPES

    digits = DEFAULT_RECIPES["digits"]
    assert (digits.epochs, digits.lr_decay_every) == (40, 0.75)  # one decay, at epoch 30
    assert training_steps({"epochs": 40, "batch_size": 32, "steps": None}, 1437) == 40 * 45
    assert training_steps({"epochs": 40, "batch_size": 1437, "steps": 1800}, 1437) == 1800
    cifar = DEFAULT_RECIPES["cifar10"]
    assert cifar.lr_decay_every == 0.25 and cifar.optimizer == "adam"  # every 50 of 200 epochs
    assert any("Adam" in a for a in cifar.assumptions) and any("4-pixel" in a for a in cifar.assumptions)


@pytest.mark.slow
def test_a_moved_store_keeps_its_stability_runs_and_a_merge_copies_their_files(tmp_path: Path) -> None:
    """The GPU campaign returns its store from a temporary folder that is then deleted: the runs
    must stay readable from wherever the store lands, and a merge must bring their files along."""
    import shutil
    import sqlite3

    from detprof.report.collect import collect
    from detprof.store import ResultStore

    made = tmp_path / "device" / "work" / "results"
    made.mkdir(parents=True)
    first = _stability([*QUICK, "--variant", "algo+impl", "--runs", "2", "--db", str(made / "campaign.sqlite")])
    with sqlite3.connect(made / "campaign.sqlite") as connection:
        recorded = [r[0] for r in connection.execute("SELECT predictions_path FROM stability_runs")]
    assert recorded and all(not Path(p).is_absolute() and p.startswith("stability/") for p in recorded)

    returned = tmp_path / "returned"
    shutil.copytree(made, returned)
    shutil.rmtree(tmp_path / "device")  # the device's temporary folder is gone
    with ResultStore(returned / "campaign.sqlite") as store:
        experiments = collect(store).stability
    assert len(experiments) == 1 and experiments[0]["measures"]["churn"] == pytest.approx(first["churn"])

    merged = tmp_path / "lab" / "lab.sqlite"
    counts = json.loads(runner.invoke(app, ["db", "merge", str(returned / "campaign.sqlite"), "--db", str(merged),
                                            "--json"]).stdout)
    assert counts["stability_added"] == 2 and counts["files_copied"] == 5  # 2 x (predictions, weights) + labels
    shutil.rmtree(returned)  # the merged store needs nothing of the one it came from
    with ResultStore(merged) as store:
        again = collect(store).stability
    assert len(again) == 1 and again[0]["measures"]["churn"] == pytest.approx(first["churn"])
    # Negative control: without the files the experiment is not readable, so the checks above mean something.
    shutil.rmtree(merged.parent / "stability")
    from detprof.stability.stored import experiment_measures

    with ResultStore(merged) as store:
        assert [experiment_measures(store, e) for e in store.stability_experiments()] == [None]
