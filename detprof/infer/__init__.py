"""Inference determinism: greedy decoding of a causal language model under one factor changed at a
time (the invariance grid), each configuration compared bit for bit with its baseline.

spec (what an inference process is told: DecodeSettings, ModelSource, InferenceSpec), rows (the
grid's rows, declared once), prompts (seeded random token ids or a user's file), compare (two
decodings bit for bit, the 1-ulp control), run (run_inference_grid: the API ``detprof infer``
calls). The decoding itself runs in detprof.backends.torch.inference.
"""
