"""Sizes the zoo's registry and its models share, in a module of their own so that a model's module
(which imports torch) and the registry (which must not) need not import each other."""

MEDIUM_CNN_KERNEL_SIZES = range(1, 8)  # the paper's Figure 9b: kernel sizes 1 to 7
