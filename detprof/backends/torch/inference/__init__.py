"""Inference in PyTorch: causal language models built as Hugging Face models (models), greedy
decoding under one DecodeSettings (decode), and the process that decodes a spec's prompts under
each of its settings (entry)."""
