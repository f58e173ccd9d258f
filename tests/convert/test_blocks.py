"""The pure-Python block-string parser: decoding and errors that name the bad token."""
from __future__ import annotations

import sys

import pytest

from convert.blocks import BlockSpec, decode_arch, parse_block, split_channels


def test_parses_a_mixnet_block():
    spec = parse_block("ir_r3_k3.5.7_a1.1_p1.1_s2_e6_c40_se0.5_nsw")
    assert spec == BlockSpec(block_type="ir", out_channels=40, kernel_sizes=(3, 5, 7), stride=2, expansion=6.0,
                             repeats=3, expand_groups=2, project_groups=2, se_ratio=0.5, activation="swish")
    reps = spec.repeated()
    assert [r.stride for r in reps] == [2, 1, 1] and all(r.repeats == 1 for r in reps)


def test_defaults_and_decode_arch_expands_repeats():
    stages = decode_arch([["ds_r1_k3_s1_e1_c16"], ["ir_r2_k3_s2_e6_c24", "ir_r1_k5_s1_e3_c24_noskip_nre"]])
    assert [len(s) for s in stages] == [1, 3]
    assert stages[0][0].activation is None and stages[0][0].se_ratio is None
    assert stages[1][2].skip is False and stages[1][2].activation == "relu" and stages[1][2].kernel_sizes == (5,)


@pytest.mark.parametrize("block, bad", [
    ("xx_r1_k3_c16", "xx"),
    ("ir_r1_k3_s2_e6_q7_c40", "q7"),
    ("ir_r1_k3.5x_c40", "k3.5x"),
    ("ir_r1_k4_c40", "k4"),
    ("ir_r1_k3_s3_c40", "s3"),
    ("ir_r1_k3_e6_c40_se0.5_nzz", "nzz"),
    ("ir_r1_k3_a1.3_c40", "a1.3"),
    ("ir_r0_k3_c40", "r0"),
    ("ir_r1_k3_c40_c48", "c48"),
    ("ir_r1_k3_eX_c40", "eX"),
    ("ir_r1__c40", ""),
])
def test_errors_name_the_bad_token(block, bad):
    with pytest.raises(ValueError) as info:
        parse_block(block)
    assert f"bad token {bad!r}" in str(info.value)
    assert block in str(info.value)


def test_missing_channels_and_empty():
    with pytest.raises(ValueError, match="no output channels"):
        parse_block("ir_r1_k3_s1_e6")
    with pytest.raises(ValueError, match="empty block string"):
        parse_block("")
    with pytest.raises(ValueError, match="stage 0 is a string"):
        decode_arch(["ir_r1_k3_c16"])


def test_split_channels_equal_when_divisible():
    assert split_channels(240, 3) == [80, 80, 80]
    assert split_channels(10, 3) == [4, 3, 3]


def test_parser_imports_no_tensorflow():
    assert "convert.blocks" in sys.modules
    import subprocess
    code = "import sys, convert.blocks; sys.exit(1 if ('tensorflow' in sys.modules or 'keras' in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
