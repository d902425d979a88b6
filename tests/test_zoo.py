from __future__ import annotations

import pytest
import torch

from detprof.backend import zoo_rows
from detprof.backends.torch.zoo import build_model, count_parameters
from detprof.backends.torch.zoo.paper_cnns import MediumCNN, SmallCNN
from detprof.zoo import ARCHS, UnknownArchError, canonical_arch

# Reference implementations' parameter counts: torchvision's model docs at 1000 classes, and Hugging
# Face transformers' classes at their default configurations (GPT2LMHeadModel(GPT2Config()),
# BertForMaskedLM(BertConfig()), ViTForImageClassification(ViTConfig(num_labels=1000))).
REFERENCE_PARAMS = {
    "vgg16": 138_357_544, "vgg19": 143_667_240, "resnet18": 11_689_512, "resnet50": 25_557_032,
    "resnet152": 60_192_808, "densenet121": 7_978_856, "densenet201": 20_013_928, "mobilenet-v2": 3_504_872,
    "efficientnet-b0": 5_288_548, "inception-v3": 27_161_264,
    "gpt2-small": 124_439_808, "bert-base": 109_514_298, "vit-b16": 86_567_656,
}
# Counts of the zoo's own configurations: llama-small's is also LlamaForCausalLM's at the same
# configuration (below, where transformers is installed); unet-small's follows from UNET_SMALL.
OWN_CONFIGURATION_PARAMS = {"llama-small": 55_321_088, "unet-small": 1_974_211}


@pytest.mark.parametrize("arch", sorted(REFERENCE_PARAMS) + sorted(OWN_CONFIGURATION_PARAMS))
def test_parameter_counts_match_reference(arch: str) -> None:
    spec = ARCHS[arch]
    with torch.device("meta"):
        model = build_model(arch, num_classes=1000 if spec.kind == "image-classification" else None)
    assert count_parameters(model) == {**REFERENCE_PARAMS, **OWN_CONFIGURATION_PARAMS}[arch]


def test_transformer_counts_equal_hugging_face_classes_of_the_same_configuration() -> None:
    transformers = pytest.importorskip("transformers")
    from detprof.backends.torch.zoo.language import LLAMA_SMALL

    with torch.device("meta"):
        theirs = {
            "gpt2-small": transformers.GPT2LMHeadModel(transformers.GPT2Config()),
            "bert-base": transformers.BertForMaskedLM(transformers.BertConfig()),
            "vit-b16": transformers.ViTForImageClassification(transformers.ViTConfig(num_labels=1000)),
            "llama-small": transformers.LlamaForCausalLM(transformers.LlamaConfig(
                vocab_size=LLAMA_SMALL.vocab, hidden_size=LLAMA_SMALL.dim, intermediate_size=LLAMA_SMALL.hidden,
                num_hidden_layers=LLAMA_SMALL.layers, num_attention_heads=LLAMA_SMALL.heads,
                num_key_value_heads=LLAMA_SMALL.kv_heads, max_position_embeddings=LLAMA_SMALL.max_tokens,
                tie_word_embeddings=False)),
        }
        ours = {arch: build_model(arch) for arch in theirs}
    for arch in theirs:
        assert count_parameters(ours[arch]) == count_parameters(theirs[arch]), arch
    # The control: one layer fewer is a different count.
    with torch.device("meta"):
        fewer = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=11))
    assert count_parameters(fewer) != count_parameters(ours["gpt2-small"])


def _example(arch: str, batch: int = 2) -> tuple[torch.nn.Module, object, object, object]:
    """A zoo model at its smallest input (8 tokens for the language models), one synthetic batch of
    its workload kind, and the kind's loss."""
    from detprof.backends.torch.training import KINDS
    from detprof.workload import TOKEN_KINDS, default_workload

    spec = ARCHS[arch]
    side = max(spec.min_image_size, spec.image_multiple)
    workload = default_workload(arch, on_gpu=False, batch_size=batch, image_size=side,
                                sequence_length=8 if spec.kind in TOKEN_KINDS else None)
    kind = KINDS[workload.kind]
    model = build_model(arch, image_size=None if spec.kind in TOKEN_KINDS else side)
    return model, kind.make_batch(workload, torch.Generator().manual_seed(0)), kind.loss, workload


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_trains_one_step_at_its_smallest_input(arch: str) -> None:
    from detprof.backends.torch.training import call_model, main_output

    spec = ARCHS[arch]
    model, batch, loss, workload = _example(arch)
    out = call_model(model.train(), batch.inputs)  # type: ignore[attr-defined]
    expected = {"image-classification": (2, spec.num_classes), "causal-lm": (2, 8, spec.num_classes),
                "masked-lm": (2, 8, spec.num_classes), "noise-prediction": (2, *workload.shape)}[spec.kind]
    outputs = out if isinstance(out, tuple) else (out,)
    assert all(o.shape == expected for o in outputs), [o.shape for o in outputs]
    assert main_output(out).shape == expected
    value = loss(out, batch.targets)  # type: ignore[operator, attr-defined]
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_inception_returns_aux_logits_only_in_training() -> None:
    model = build_model("inception-v3", num_classes=7)
    with torch.no_grad():
        main, aux = model.train()(torch.randn(2, 3, 299, 299))
        assert main.shape == aux.shape == (2, 7)
        assert model.eval()(torch.randn(2, 3, 299, 299)).shape == (2, 7)


def _shapes_after_pools(features: torch.nn.Sequential, x: torch.Tensor) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Run ``features`` on ``x``; return the (C, H, W) after each max pool, and the final output."""
    shapes = []
    for layer in features:
        x = layer(x)
        if isinstance(layer, torch.nn.MaxPool2d):
            shapes.append(tuple(x.shape[1:]))
    return shapes, x


@pytest.mark.parametrize("kernel_size", range(1, 8))
def test_medium_cnn_stage_shapes_match_appendix_c(kernel_size: int) -> None:
    model = MediumCNN(kernel_size).eval()
    shapes, x = _shapes_after_pools(model.features, torch.randn(1, 3, 224, 224))
    # Appendix C: 112x112x16, 56x56x32, 28x28x64, 14x14x128, 7x7x256, 3x3x512 (channels first here).
    assert shapes == [(16, 112, 112), (32, 56, 56), (64, 28, 28), (128, 14, 14), (256, 7, 7), (512, 3, 3)]
    assert model.classifier(x.flatten(1)).shape == (1, 1000)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (kernel_size, kernel_size) and c.stride == (1, 1) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 6


@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_cnn_shapes_and_optional_batch_norm(batch_norm: bool) -> None:
    model = SmallCNN(batch_norm=batch_norm).eval()
    shapes, x = _shapes_after_pools(model.features, torch.randn(3, 3, 32, 32))
    assert shapes == [(16, 16, 16), (32, 8, 8), (32, 4, 4)]
    assert model.classifier(x).shape == (3, 10)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == (3 if batch_norm else 0)
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [32, 10]


def test_small_cnn_for_8x8_grey_digits_with_dropout() -> None:
    model = SmallCNN(num_classes=10, image_size=8, in_channels=1, dropout=0.1)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert any(isinstance(m, torch.nn.Dropout) for m in model.modules())


def test_names_accept_underscores_and_case() -> None:
    assert canonical_arch("MobileNet_V2") == "mobilenet-v2"
    assert canonical_arch("resnet18_cifar") == "resnet18-cifar"
    with pytest.raises(UnknownArchError, match="unknown arch 'alexnet'; accepted: vgg16"):
        canonical_arch("alexnet")


@pytest.mark.parametrize("bad", [0, 8, 9, -1])
def test_medium_cnn_rejects_kernel_sizes_outside_1_to_7(bad: int) -> None:
    with pytest.raises(ValueError, match="1 to 7"):
        build_model("medium-cnn", kernel_size=bad)


def test_describe_zoo_lists_every_arch_with_params_and_input() -> None:
    rows = {r["arch"]: r for r in zoo_rows() if r["framework"] == "pytorch"}
    assert set(rows) == set(ARCHS)
    assert rows["vgg19"]["params"] == REFERENCE_PARAMS["vgg19"]
    assert rows["inception-v3"]["input"] == [3, 299, 299]
    assert rows["small-cnn"]["input"] == [3, 32, 32]
    keras = {r["arch"]: r for r in zoo_rows() if r["framework"] == "tensorflow"}
    assert keras["resnet50"]["params"] == 25_636_712  # Keras' own count (not torchvision's 25,557,032)
    assert keras["medium-cnn"]["trainable_params"] == rows["medium-cnn"]["params"]  # the same layers
    assert "resnet18" not in keras
    assert keras["inception-v3"]["notes"] == "Keras' InceptionV3 has no auxiliary classifier"


# aten ops whose CUDA kernels have no deterministic implementation, by the name PyTorch's warning uses.
CUDA_NONDETERMINISTIC_BACKWARDS = {"_adaptive_avg_pool2d_backward": "adaptive_avg_pool2d_backward_cuda",
                                   "upsample_bilinear2d_backward": "upsample_bilinear2d_backward_out_cuda"}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_known_nondeterministic_ops_are_the_ones_the_network_dispatches(arch: str) -> None:
    """The metadata must name exactly the CUDA-nondeterministic ops a training step reaches: traced
    on the meta device (no memory, no time), where the same aten ops are dispatched as on CUDA.
    nn.AdaptiveAvgPool2d(1) becomes a mean (deterministic backward); VGG's (7, 7) pool does not."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RecordOps(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.ops.add(func._schema.name.split("::")[-1])
            return func(*args, **(kwargs or {}))

    from detprof.backends.torch.training import call_model

    spec = ARCHS[arch]
    with torch.device("meta"):
        model, batch, loss, _ = _example(arch)
    model.train()
    inputs = batch.to(torch.device("meta")).inputs  # type: ignore[attr-defined]
    with RecordOps() as recorder:
        out = call_model(model, inputs)
        sum(o.sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
    reached = {CUDA_NONDETERMINISTIC_BACKWARDS[op] for op in recorder.ops if op in CUDA_NONDETERMINISTIC_BACKWARDS}
    assert reached == set(spec.known_nondeterministic_ops)
