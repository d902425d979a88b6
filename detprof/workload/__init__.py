"""What is trained: the user's request, the checked workload a backend builds from it, and the
training recipe every backend runs."""

from detprof.workload.recipe import RECIPE, TrainingRecipe
from detprof.workload.request import WorkloadRequest
from detprof.workload.resolve import DEFAULT_ARCH, build_workload, default_workload
from detprof.workload.spec import IMAGE_CLASSIFICATION, WORKLOAD_KINDS, Workload

__all__ = ["DEFAULT_ARCH", "IMAGE_CLASSIFICATION", "RECIPE", "TrainingRecipe", "WORKLOAD_KINDS", "Workload",
           "WorkloadRequest", "build_workload", "default_workload"]
