"""User errors outside the stages, one line each: a device this machine lacks, a device name
torch does not know, `compare --last 0` (a malformed `-S` value: test_config.py)."""

from __future__ import annotations

import pytest
import torch

from noisyflow.errors import ParamsError
from noisyflow.train.runtime import resolve_device
from pipeline.cli import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_a_params_error():
    with pytest.raises(ParamsError, match="runtime.device: cuda was asked for, but this torch"):
        resolve_device("cuda")


def test_a_device_name_torch_does_not_know_is_a_params_error():
    with pytest.raises(ParamsError, match=r"runtime.device: 'gpu0' is not a device name"):
        resolve_device("gpu0")


def test_compare_last_zero_is_refused_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--last", "0"])
    assert exc.value.code == 2
    assert "argument --last: expected an integer >= 1, got 0" in capsys.readouterr().err
