"""What is trained: the user's request, the checked workload a backend builds from it, and the
training recipe every backend runs."""

from detprof.workload.recipe import RECIPE, TrainingRecipe
from detprof.workload.request import WorkloadRequest
from detprof.workload.resolve import DEFAULT_ARCH, build_workload, default_workload
from detprof.workload.spec import Workload
from detprof.workload.user import UserWorkload, UserWorkloadError
from detprof.zoo.kinds import (
           CAUSAL_LM,
           IMAGE_CLASSIFICATION,
           MASKED_LM,
           NOISE_PREDICTION,
           TOKEN_KINDS,
           USER_DEFINED,
           WORKLOAD_KINDS,
)

__all__ = ["CAUSAL_LM", "DEFAULT_ARCH", "IMAGE_CLASSIFICATION", "MASKED_LM", "NOISE_PREDICTION", "RECIPE",
           "TOKEN_KINDS", "TrainingRecipe", "USER_DEFINED", "UserWorkload", "UserWorkloadError", "WORKLOAD_KINDS",
           "Workload", "WorkloadRequest",
           "build_workload", "default_workload"]
