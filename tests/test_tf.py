"""The TensorFlow backend: xplane decoding checked against TensorFlow's own protobuf classes on a
profile made here, Keras' parameter counts, `overhead --framework tf` end to end, the PyTorch
against TensorFlow section of the report, and one-line errors. TensorFlow runs only in separate
interpreters: this test process holds torch, and the two never share a process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.backends.tf import tensorflow_available
from detprof.cli import app
from detprof.kernels import kernel_table, load_trace
from detprof.kernels.xplane import XPlaneError, load_xplane, parse_xspace, profiled_steps

# one worker runs this file under pytest-xdist: its module fixtures (tensorflow-runs) are built once
pytestmark = pytest.mark.xdist_group("tensorflow-runs")

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
needs_tf = pytest.mark.skipif(not tensorflow_available(), reason="TensorFlow is not installed (pip install '.[tf]')")

# Profiles two training steps of the small CNN in Keras and prints what TensorFlow's own protobuf
# classes read from the file: every plane, line and event (name, duration, offset).
PROFILE_SCRIPT = r"""
import glob, importlib, json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf, keras
from detprof.backends.tf.zoo import build_keras_model
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)
model = build_keras_model("small-cnn", 10, 32)
optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
x = tf.random.stateless_normal((8, 32, 32, 3), seed=(0, 0))
y = tf.random.stateless_uniform((8,), seed=(0, 1), maxval=10, dtype=tf.int32)
@tf.function
def step():
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss
step().numpy()
tf.profiler.experimental.start(sys.argv[1])
for number in range(2):
    with tf.profiler.experimental.Trace("train", step_num=number, _r=1):
        step().numpy()
tf.profiler.experimental.stop()
path = glob.glob(os.path.join(sys.argv[1], "plugins/profile/*/*.xplane.pb"))[0]
for module in ("tensorflow.tsl.profiler.protobuf.xplane_pb2", "tsl.profiler.protobuf.xplane_pb2",
               "tensorflow.core.profiler.protobuf.xplane_pb2"):
    try:
        xplane_pb2 = importlib.import_module(module)
        break
    except ImportError:
        continue
space = xplane_pb2.XSpace()
space.ParseFromString(open(path, "rb").read())
planes = [{"name": p.name, "lines": [{"name": l.name, "timestamp_ns": l.timestamp_ns,
           "events": [[p.event_metadata[e.metadata_id].name, e.duration_ps, e.offset_ps] for e in l.events]}
          for l in p.lines]} for p in space.planes]
print(json.dumps({"path": path, "planes": planes, "torch_loaded": "torch" in sys.modules}))
"""


@pytest.fixture(scope="module")
def real_profile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    logdir = tmp_path_factory.mktemp("tf-profile")
    done = subprocess.run([sys.executable, "-c", PROFILE_SCRIPT, str(logdir)], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_tf
@pytest.mark.slow
def test_the_xplane_decoder_reads_what_tensorflows_own_classes_read(real_profile: dict) -> None:
    assert real_profile["torch_loaded"] is False
    ours = parse_xspace(Path(real_profile["path"]).read_bytes())
    theirs = real_profile["planes"]
    assert [p.name for p in ours] == [p["name"] for p in theirs] and "/host:CPU" in [p.name for p in ours]
    for plane, expected in zip(ours, theirs, strict=True):
        assert [line.name for line in plane.lines] == [line["name"] for line in expected["lines"]]
        for line, expected_line in zip(plane.lines, expected["lines"], strict=True):
            assert line.timestamp_ns == expected_line["timestamp_ns"]
            assert [[plane.event_names[e.metadata_id], e.duration_ps, e.offset_ps] for e in line.events] == \
                expected_line["events"]
    assert profiled_steps(ours) == 2
    assert sum(len(line.events) for plane in ours for line in plane.lines) > 300


@needs_tf
@pytest.mark.slow
def test_a_tensorflow_profile_gives_a_per_op_table_of_self_times(real_profile: dict) -> None:
    activities = load_trace(real_profile["path"])  # load_trace hands *.xplane.pb to the xplane reader
    assert activities.kind == "cpu" and activities.parser == "xplane"
    table = kernel_table(activities.events)
    categories = set(table["category"])
    assert {"conv forward", "conv data-grad", "conv weight-grad", "gemm", "optimizer"} <= categories
    # self times: never more than the ops' raw durations, and never negative
    raw_ps = sum(d for p in real_profile["planes"] for line in p["lines"] for name, d, _ in line["events"]
                 if re.match(r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$", name))
    assert 0 < table["total_us"].sum() <= raw_ps / 1e6 + 1e-6 and (table["min_us"] >= 0).all()
    result = runner.invoke(app, ["kernels", "--trace", real_profile["path"], "--top", "5", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kernels"][0]["name"] == table.iloc[0]["name"]


def test_a_file_that_is_not_an_xplane_exits_2_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xplane.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    with pytest.raises(XPlaneError):
        load_xplane(bad)
    result = runner.invoke(app, ["kernels", "--trace", str(bad)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "is not a TensorFlow profiler trace" in result.stderr


@needs_tf
@pytest.mark.slow
def test_the_stored_keras_counts_are_keras_own() -> None:
    script = ("import os, sys, csv; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
              "from detprof.backends.tf.zoo import write_counts\n"
              "write_counts(__import__('pathlib').Path(sys.argv[1]))\n"
              "print('torch' in sys.modules)")
    out = REPO / "tests" / "artifacts" / "keras_zoo_check.csv"
    out.parent.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert out.read_text() == (REPO / "kernels_db" / "keras_zoo.csv").read_text()


TINY = ["--batch-size", "4", "--steps", "3", "--warmup", "1", "--repeats", "2", "--profile-steps", "1"]


@pytest.fixture(scope="module")
def tf_and_torch_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """medium-cnn k=3 measured in both frameworks on the CPU, into one store."""
    db = tmp_path_factory.mktemp("frameworks") / "r.sqlite"
    tf_run = runner.invoke(app, ["overhead", "--framework", "tf", "--arch", "medium-cnn", "--kernel-size", "3", *TINY,
                                 "--db", str(db), "--json"])
    assert tf_run.exit_code == 0, tf_run.stderr
    torch_run = runner.invoke(app, ["overhead", "--arch", "medium-cnn", "--kernel-size", "3", *TINY, "--db", str(db),
                                    "--json"])
    assert torch_run.exit_code == 0, torch_run.stderr
    return db, json.loads(tf_run.stdout), json.loads(torch_run.stdout)


@needs_tf
@pytest.mark.slow
def test_overhead_with_tensorflow_measures_both_modes_and_their_kernels(tf_and_torch_store: tuple) -> None:
    db, document, _ = tf_and_torch_store
    assert document["framework"] == "tensorflow" and document["failed_jobs"] == []
    environment = document["environment"]
    assert environment["framework"] == "tensorflow" and environment["tensorflow"] and environment["keras"]
    assert environment["torch_loaded"] is False  # the job process never loaded torch
    default, deterministic = document["modes"]
    assert default["toggles"] == {"tf_op_determinism": False} and deterministic["toggles"] == {
        "tf_op_determinism": True}
    assert deterministic["determinism"] == "on" and default["determinism"] == "off"
    assert deterministic["bitwise_identical_across_repeats"] is True
    for mode in (default, deterministic):
        assert mode["repeats_ok"] == 2 and mode["step_ms"] > 0 and mode["kernel_ms"] > 0
        assert mode["peak_mem_bytes"] > 0 and mode["peak_mem_kind"] == "process_peak_rss"
    assert document["ratio"] > 0 and document["kernel_ratio"] > 0
    newest_tf = runner.invoke(app, ["kernels", "--db", str(db), "--framework", "tf", "--json"])  # not the torch run
    assert newest_tf.exit_code == 0, newest_tf.stderr
    listed = json.loads(newest_tf.stdout)
    assert listed["run_id"] == document["run_id"] and listed["diff_modes"] == ["default", "deterministic"]
    assert any(r["category"] == "conv weight-grad" for r in listed["kernels"])
    traces = list((db.parent / "traces").glob("*/job*-default/plugins/profile/*/*.xplane.pb"))
    assert traces, "the profile is kept for TensorBoard"


@needs_tf
@pytest.mark.slow
def test_the_report_sets_pytorch_beside_tensorflow(tf_and_torch_store: tuple, tmp_path: Path) -> None:
    from tests.test_report import _assert_rendered, _browse

    db, tf_doc, torch_doc = tf_and_torch_store
    made = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "frameworks.html"), "--json"])
    assert made.exit_code == 0, made.stderr
    sections = json.loads(made.stdout)["sections"]
    assert sections["frameworks"] == "drawn" and sections["figure_9b"] == "drawn"
    page = (tmp_path / "frameworks.html").read_text()
    assert "tensorflow on cpu" in page and "pytorch on cpu" in page and "cpu, TensorFlow" in page
    dom = _browse(tmp_path / "frameworks.html", REPO / "tests" / "artifacts" / "report_frameworks.png")
    _assert_rendered(dom, charts=3)  # 9b (a line per framework), the framework comparison, Figure 8


@needs_tf
@pytest.mark.slow
def test_a_sweep_measures_with_tensorflow(tmp_path: Path) -> None:
    spec = tmp_path / "tf.toml"
    spec.write_text('framework = "tf"\narchs = ["small-cnn"]\ngpus = ["cpu"]\nbatch_size = 4\nimage_size = 32\n'
                    'steps = 2\nwarmup = 1\nprofile_steps = 0\nrepeats = 1\n')
    result = runner.invoke(app, ["sweep", str(spec), "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    job = json.loads(result.stdout)["jobs"][0]
    assert job["status"] == "done" and job["label"] == "small-cnn (TensorFlow) on cpu: deterministic/default"
    listed = json.loads(runner.invoke(app, ["runs", "--db", str(tmp_path / "r.sqlite"), "--json"]).stdout)
    assert listed["runs"][0]["config"]["framework"] == "tensorflow"


@pytest.mark.parametrize(("args", "message"), [
    (["--framework", "mxnet"], r"--framework 'mxnet' is not accepted; use pytorch or tf \(tensorflow\)"),
    (["--framework", "tf", "--arch", "resnet18"], r"--arch resnet18 is not available with --framework tf; "
                                                  r"TensorFlow archs: vgg16, vgg19, resnet50"),
    (["--framework", "tf", "--arch", "vgg19", "--modes", "default,deterministic-algorithms"],
     r"mode 'deterministic-algorithms' is not available with --framework tf; TensorFlow modes: default, "
     r"deterministic"),
    (["--framework", "tf", "--model", "x.py:build"], r"--model is not available with --framework tf; it works with "
                                                     r"PyTorch"),
    (["--framework", "tf", "--arch", "vgg19", "--compile"], r"--compile is not available with --framework tf; it "
                                                            r"works with PyTorch"),
])
def test_bad_tensorflow_arguments_exit_2_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    if not tensorflow_available() and "mxnet" not in args:
        pytest.skip("without TensorFlow the install hint comes first")
    result = runner.invoke(app, ["overhead", *args, "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr
    assert not (tmp_path / "r.sqlite").exists()


def test_without_tensorflow_framework_tf_exits_2_with_the_install_command(tmp_path: Path) -> None:
    # A new interpreter where importing tensorflow fails, as on a machine without it.
    script = ("import sys\n"
              "class NoTensorFlow:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'tensorflow':\n"
              "            raise ModuleNotFoundError(name)\n"
              "sys.meta_path.insert(0, NoTensorFlow())\n"
              "from detprof.cli import app\n"
              "app(['overhead', '--framework', 'tf', '--arch', 'vgg19', '--db', sys.argv[1]])\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r.sqlite")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("detprof: error: --framework tf needs TensorFlow, which is not installed here; "
                                   "install it with: pip install 'detprof[tf]' (or 'detprof[tf-cpu]' where there is "
                                   "no GPU)")


@needs_tf
@pytest.mark.slow
def test_check_with_tensorflow_finds_determinism_and_a_thread_count_that_breaks_it() -> None:
    same = runner.invoke(app, ["check", "--framework", "tf", "--arch", "small-cnn", "--steps", "3", "--batch-size",
                               "8", "--json"])
    assert same.exit_code == 0, same.stderr
    document = json.loads(same.stdout)
    assert document["framework"] == "tensorflow" and document["bitwise_identical"] is True
    assert document["max_abs_diff"] == 0.0 and document["first_divergence"] is None
    assert document["sensitivity"]["detected"] is True  # TensorFlow's digests see a 1-ulp change too
    # medium-cnn's convolutions split their work by thread count in oneDNN: 1 against 2 threads
    split = runner.invoke(app, ["check", "--framework", "tf", "--arch", "medium-cnn", "--threads", "1,2", "--steps",
                                "2", "--batch-size", "4", "--json"])
    assert split.exit_code == 1, split.stderr
    result = json.loads(split.stdout)
    assert result["differing_factor"] == "threads" and [r["threads"] for r in result["runs"]] == [1, 2]
    assert result["bitwise_identical"] is False and 0 < result["max_abs_diff"] < 1e-3
    assert result["first_divergence"]["step"] == 1 and "conv2d" in result["first_divergence"]["parameter"]


def test_locate_op_is_pytorch_only(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--framework", "tf", "--arch", "small-cnn", "--locate-op"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("detprof: error: --locate-op is not available with --framework tf; it works "
                                     "with PyTorch")


@pytest.mark.parametrize(("message", "op"), [
    ("{{function_node __wrapped__AdjustContrastv2_device_/job:localhost/replica:0/task:0/device:GPU:0}} A "
     "deterministic GPU implementation of AdjustContrastv2 is not currently available. [Op:AdjustContrastv2] name: ",
     "AdjustContrastv2"),
    ("Deterministic GPU implementation of SoftmaxCrossEntropyWithLogits not available.",
     "SoftmaxCrossEntropyWithLogits"),
    ("A deterministic GPU implementation of fused batch-norm backprop, when training is disabled, is not currently "
     "available.", "fused batch-norm backprop"),
    ("A deterministic GPU implementation of SparseTensorDenseMatmulOp is not currently available.",
     "SparseTensorDenseMatmulOp"),
    ("Random ops require a seed to be set when determinism is enabled.", None),
])
def test_the_op_tensorflow_refuses_is_named_from_its_message(message: str, op: str | None) -> None:
    # The messages are TensorFlow's own (its kernels' UnimplementedError texts); no GPU here raises them.
    from detprof.backends.tf.worker import refused_op

    assert refused_op(message) == op
