"""The workload request's declaration: each field's option, and the fields each backend builds from."""

from __future__ import annotations

import pytest

from detprof.workload import WorkloadRequest


def test_every_request_field_has_its_option_and_a_backend_refuses_what_it_does_not_declare() -> None:
    from dataclasses import fields

    from detprof.backend import backend_for, require_request_fields
    from detprof.errors import ArgumentError
    from detprof.workload.request import REQUEST_OPTIONS, given_fields

    assert set(REQUEST_OPTIONS) == {field.name for field in fields(WorkloadRequest)}
    request = WorkloadRequest(arch="vgg19", compiled=True, sdpa_backend="auto", batch_norm=False)
    assert given_fields(request) == ["arch", "batch_norm", "compiled"]  # "auto" asks for nothing
    with pytest.raises(ArgumentError, match="^--compile is not available with --framework tf; it works with PyTorch$"):
        require_request_fields(backend_for("tensorflow"), given_fields(request), REQUEST_OPTIONS)
    # control: PyTorch declares every field, and TensorFlow takes what it declares
    require_request_fields(backend_for("pytorch"), given_fields(request), REQUEST_OPTIONS)
    require_request_fields(backend_for("tensorflow"), ["arch", "batch_size", "image_size"], REQUEST_OPTIONS)
