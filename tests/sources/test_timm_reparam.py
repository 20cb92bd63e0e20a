"""timm's `reparam` model option: the deploy form of a re-parameterisable model, as timm's benchmark runs it."""

from __future__ import annotations

import pytest

import afford
from afford.errors import InputError


def test_reparam_fuses_mobileone_branches_to_the_deploy_form_timm_benchmarks() -> None:
    built = afford.assess("timm:mobileone_s0", infer_samples=1, forward_only=True).to_dict()
    deploy = afford.assess("timm:mobileone_s0", infer_samples=1, forward_only=True,
                           model_options={"reparam": "true"}).to_dict()
    # timm's published table (tests/golden/timm_infer_pro6000.csv): 2.08 M params, 0.28 GMACs (fvcore) for the
    # deploy form; as built (4 training-time conv + BN branches per block) it has 5.29 M and 1.05 GMACs
    assert built["model"]["params"] == 5_293_272
    assert deploy["model"]["params"] == 2_078_504
    assert deploy["per_sample"]["forward_flops"] / 2e9 == pytest.approx(0.28, abs=0.01)


def test_reparam_leaves_a_plain_model_as_it_is_and_a_bad_value_is_one_input_error() -> None:
    plain = afford.assess("timm:resnet18", infer_samples=1, forward_only=True).to_dict()
    fused = afford.assess("timm:resnet18", infer_samples=1, forward_only=True,
                          model_options={"reparam": "yes"}).to_dict()
    assert fused["per_sample"]["forward_flops"] == plain["per_sample"]["forward_flops"]
    with pytest.raises(InputError, match="reparam"):
        afford.assess("timm:resnet18", infer_samples=1, model_options={"reparam": "maybe"})
    with pytest.raises(InputError, match="no option 'depth'"):
        afford.assess("timm:resnet18", infer_samples=1, model_options={"depth": "3"})
