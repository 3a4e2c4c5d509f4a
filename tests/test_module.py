import pytest
import torch

from salvid.module import SaliencyModule

TINY = {"width_mult": 0.125, "input_size": [32, 32]}


def _batch(n=4):
    torch.manual_seed(0)
    frames = torch.randn(n, 3, 3, 32, 32)
    mask = torch.zeros(n, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    frames[:, :, :, 8:24, 8:24] += 2.0  # a bright salient square
    return {"frames": frames, "mask": mask, "video_id": torch.zeros(n, dtype=torch.long),
            "frame_id": torch.arange(n)}


@pytest.mark.parametrize("loss", ["mse", "bce", "bce_iou"])
def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(loss):
    module = SaliencyModule(model=TINY, loss=loss, optimizer={"lr": 1e-2})
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


def test_channels_last_3d_computes_the_same_loss():
    torch.manual_seed(0)
    module = SaliencyModule(model=TINY, channels_last=True).eval()
    reference, _ = module._shared_step(_batch())
    module.setup("fit")
    assert module.net.encoder.blocks[0][0][0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    loss, _ = module._shared_step(_batch())
    torch.testing.assert_close(loss, reference, rtol=1e-4, atol=1e-6)


def test_logit_losses_refuse_the_clamped_output():
    with pytest.raises(ValueError, match="needs model.output_activation=sigmoid"):
        SaliencyModule(model={**TINY, "output_activation": "clamp"}, loss="bce")


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="module.loss='l1'"):
        SaliencyModule(model=TINY, loss="l1")


def test_predict_step_returns_maps():
    module = SaliencyModule(model=TINY).eval()
    out = module.predict_step(_batch(2), 0)
    assert out["map"].shape == (2, 32, 32)
    assert 0 <= out["map"].min() and out["map"].max() <= 1
