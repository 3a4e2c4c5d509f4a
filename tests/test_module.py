from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from salvid.training.module import SaliencyModule
from tests.helpers.networks import assert_varied, calibrated

TINY = {"width_mult": 0.125, "input_size": [32, 32]}
# the optimizer settings of conf/module/default.yaml, their one home
OPTIMIZER = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/module/default.yaml").optimizer)


def _batch(n=4):
    torch.manual_seed(0)
    frames = torch.randn(n, 3, 3, 32, 32)
    mask = torch.zeros(n, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    frames[:, :, :, 8:24, 8:24] += 2.0  # a bright salient square
    return {"frames": frames, "mask": mask, "video_id": torch.zeros(n, dtype=torch.long),
            "frame_id": torch.arange(n)}


@pytest.mark.parametrize("loss", ["mse", "bce", "bce_iou", "bce_iou_ssim"])
def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(loss):
    module = SaliencyModule(model=TINY, loss=loss, optimizer={**OPTIMIZER, "lr": 1e-2})
    opt = module.configure_optimizers()
    batch = _batch()
    losses = []
    for _ in range(15):
        loss_value, _ = module._shared_step(batch)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        losses.append(loss_value.item())
    assert losses[-1] < 0.7 * losses[0]


def test_channels_last_3d_computes_the_same_loss_and_maps():
    torch.manual_seed(0)
    module = SaliencyModule(model=TINY, optimizer=OPTIMIZER, channels_last=True)
    calibrated(module.net)  # an untrained network's flat map gives the same loss whatever its weights
    with torch.no_grad():
        reference, reference_maps = module._shared_step(_batch())
    assert_varied(reference_maps)
    module.setup("fit")
    assert module.net.encoder.blocks[0][0][0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        loss, maps = module._shared_step(_batch())
    torch.testing.assert_close(maps, reference_maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, reference, rtol=1e-4, atol=1e-6)


def test_logit_losses_refuse_the_clamped_output():
    with pytest.raises(ValueError, match="needs model.output_activation=sigmoid"):
        SaliencyModule(model={**TINY, "output_activation": "clamp"}, optimizer=OPTIMIZER, loss="bce")


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="module.loss='l1'"):
        SaliencyModule(model=TINY, optimizer=OPTIMIZER, loss="l1")


def test_one_training_step_of_fusion3d_updates_head_and_unfrozen_backbone_only():
    model = {"family": "fusion3d", "input_size": [64, 96], "pretrained": "none", "freeze_backbone": 2}
    module = SaliencyModule(model=model, optimizer={**OPTIMIZER, "name": "adamw", "backbone_lr": 1e-4},
                            loss="bce_iou")
    opt = module.configure_optimizers()
    assert [g["lr"] for g in opt.param_groups] == [OPTIMIZER["lr"], 1e-4]
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    batch = {**_batch(2), "frames": torch.randn(2, 3, 3, 64, 96), "mask": (torch.rand(2, 1, 64, 96) > 0.5).float()}
    module.train()
    loss, _ = module._shared_step(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = module.net.state_dict()
    assert torch.isfinite(loss)
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert not torch.equal(before["backbone._blocks.15._project_conv.weight"], after["backbone._blocks.15._project_conv.weight"])
    # the stem and the two finest levels are frozen: weights and BatchNorm statistics unchanged
    for key in ("backbone._conv_stem.weight", "backbone._bn0.running_mean", "backbone._blocks.2._bn2.running_var"):
        assert torch.equal(before[key], after[key]), key


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="module.optimizer.name='sgd'"):
        SaliencyModule(model=TINY, optimizer={**OPTIMIZER, "name": "sgd"})


def test_a_validation_with_no_frame_to_score_is_warned(caplog, monkeypatch):
    """Every validation mask empty (a frame without an object scores nothing): val/plcc is NaN, so checkpoint
    selection would rank on no score; one warning says so and what to do."""
    module = SaliencyModule(model=TINY, optimizer=OPTIMIZER)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)  # no trainer to log to
    module.val_metrics.update(torch.rand(2, 1, 32, 32), torch.zeros(2, 1, 32, 32, dtype=torch.bool),
                              torch.tensor([0, 0]), torch.tensor([0, 1]))
    module._log_metrics("val", module.val_metrics)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith("val/plcc is NaN: none of the validation frames could be scored "
                                                     "(2 excluded")
    caplog.clear()
    module.val_metrics.update(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32) > 0.5, torch.tensor([0, 0]),
                              torch.tensor([0, 1]))
    module._log_metrics("val", module.val_metrics)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
