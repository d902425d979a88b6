"""The workload kinds: what a workload's batches hold and how its loss is computed. Each backend
keeps one batch maker and loss per kind it trains (``detprof/backends/torch/training.py``).

Beside the zoo's catalog, which names the kind of each network, and below the workload, which
carries it (detprof.workload re-exports these names); free of imports.
"""

# Synthetic images of the workload's shape and integer class targets; cross-entropy on the logits
# (on the main and auxiliary logits, for a model that returns both).
IMAGE_CLASSIFICATION = "image-classification"
# Token ids (batch, tokens); the targets are the next tokens; cross-entropy on logits (batch,
# tokens, vocabulary).
CAUSAL_LM = "causal-lm"
# Token ids with 15% of the positions replaced by the mask token; cross-entropy on those positions.
MASKED_LM = "masked-lm"
# Noisy images and their diffusion timesteps (two inputs); mean squared error on the noise.
NOISE_PREDICTION = "noise-prediction"
# A user's workload (``--workload MODULE:FUNCTION``): its own batch maker and loss.
USER_DEFINED = "user-defined"

WORKLOAD_KINDS = (IMAGE_CLASSIFICATION, CAUSAL_LM, MASKED_LM, NOISE_PREDICTION, USER_DEFINED)
TOKEN_KINDS = (CAUSAL_LM, MASKED_LM)  # inputs are sequences of token ids, sized by --seq-len
