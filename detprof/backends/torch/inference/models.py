"""The causal language models inference runs, built as Hugging Face models so that they take an
attention mask, position ids and a KV cache as users' models do (a user's own --model must take
them the same way).

The zoo's gpt2-small and llama-small are built as their Hugging Face twins at the zoo's sizes
(``GPT2Config()``; ``LLAMA_SMALL``'s widths in a ``LlamaConfig``): the zoo's own modules are for
training and hold no cache. A user's config (a config.json, or a folder holding one) is built with
random weights drawn from the seed, or loaded from the folder's weights when it has them; nothing
is downloaded and no code from a folder is run.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detprof.backends.torch.zoo.language import GPT2_SMALL, LLAMA_SMALL
from detprof.infer.spec import ModelSource

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def zoo_config(arch: str, vocab: int | None) -> Any:
    """The Hugging Face config of a zoo arch's twin (``vocab`` tokens, default the arch's own)."""
    from transformers import GPT2Config, LlamaConfig

    if arch == "gpt2-small":
        return GPT2Config(vocab_size=vocab or GPT2_SMALL.vocab, n_positions=GPT2_SMALL.max_tokens,
                          n_embd=GPT2_SMALL.dim, n_layer=GPT2_SMALL.layers, n_head=GPT2_SMALL.heads)
    if arch == "llama-small":
        return LlamaConfig(vocab_size=vocab or LLAMA_SMALL.vocab, hidden_size=LLAMA_SMALL.dim,
                           intermediate_size=LLAMA_SMALL.hidden, num_hidden_layers=LLAMA_SMALL.layers,
                           num_attention_heads=LLAMA_SMALL.heads, num_key_value_heads=LLAMA_SMALL.kv_heads,
                           max_position_embeddings=LLAMA_SMALL.max_tokens, rms_norm_eps=1e-6,
                           tie_word_embeddings=False)
    raise ValueError(f"{arch} has no inference twin; use gpt2-small or llama-small")


def config_folder(path: str) -> Path:
    """The folder of a config path (the file's own folder for a config.json)."""
    given = Path(path)
    return given if given.is_dir() else given.parent


def build_model(source: ModelSource, seed: int, attention: str) -> nn.Module:
    """The source's model in eval mode on the CPU, float32, with ``attention`` (a Hugging Face
    attn_implementation): random weights drawn after ``torch.manual_seed(seed)`` unless a folder
    holds weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    if source.model:
        from detprof.usercode import referenced_function

        built = referenced_function(source.model, "--model")(source.vocab)
        if not isinstance(built, nn.Module):
            raise TypeError(f"it returned {type(built).__name__}, not an nn.Module")
        if not {"cache", "past_key_values"} & forward_parameters(built):
            raise TypeError("its forward takes no cache (or past_key_values); detprof infer decodes through a KV "
                            "cache as Hugging Face models take it")
        return built.float().eval()
    if source.arch:
        config = zoo_config(source.arch, source.vocab)
        return AutoModelForCausalLM.from_config(config, attn_implementation=attention).float().eval()
    assert source.config is not None
    folder = config_folder(source.config)
    if any((folder / name).exists() for name in WEIGHT_FILES):
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                     attn_implementation=attention)
        return model.float().eval()
    text = json.loads(Path(source.config if Path(source.config).is_file() else folder / "config.json").read_text())
    model_type = text.pop("model_type")
    config = AutoConfig.for_model(model_type, **text)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attention).float().eval()


def describe_model(model: nn.Module) -> dict[str, Any]:
    """The built model: its class, parameter count and vocabulary."""
    config = getattr(model, "config", None)
    return {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab": int(getattr(config, "vocab_size", 0) or 0),
            "model_type": str(getattr(config, "model_type", ""))}


def forward_parameters(model: nn.Module) -> frozenset[str]:
    """The parameter names of a model's forward (a compiled model's own module's), read once per
    forward function: decoding asks at every step, inside the timed loop."""
    forward = getattr(model, "_orig_mod", model).forward
    return _parameters_of(getattr(forward, "__func__", forward))


@functools.lru_cache(maxsize=64)
def _parameters_of(function: Any) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def cache_keyword(model: nn.Module) -> str:
    """The keyword a model's forward takes its KV cache by: ``cache`` in transformers 5.x, where
    ``past_key_values`` is deprecated, ``past_key_values`` before."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"


def keeps_last_logits(model: nn.Module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (Hugging Face's causal LMs do)."""
    return "logits_to_keep" in forward_parameters(model)


def set_attention(model: nn.Module, attention: str) -> None:
    """Switch a Hugging Face model's attention implementation in place (TypeError for a model that
    has none to switch, asked for another than SDPA)."""
    setter = getattr(model, "set_attn_implementation", None)
    config = getattr(model, "config", None)
    if setter is not None:
        if getattr(config, "_attn_implementation", None) != attention:
            setter(attention)
    elif config is not None and hasattr(config, "_attn_implementation"):  # transformers 4.x: the config field
        config._attn_implementation = attention
    elif attention != "sdpa":
        raise TypeError(f"{type(model).__name__} is not a Hugging Face model: it has no attention implementation to "
                        f"switch to {attention} (drop the attention row)")
