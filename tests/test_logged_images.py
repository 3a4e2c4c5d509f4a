"""The examples the module logs each validation epoch reach W&B as images a person can see."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from omegaconf import OmegaConf

from salvid.training.module import SaliencyModule

OPTIMIZER = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/module/default.yaml").optimizer)


class ImageLogger:
    """Stands in for Lightning's WandbLogger: keeps what ``log_image`` was handed."""

    def __init__(self):
        self.calls = []

    def log_image(self, key, images, step=None, **kwargs):
        self.calls.append((key, images, step, kwargs))


def test_val_examples_are_uint8_rgb_frame_mask_and_map_side_by_side():
    module = SaliencyModule(model={"width_mult": 0.125, "input_size": [32, 32]}, optimizer=OPTIMIZER, log_images=2)
    logger = ImageLogger()
    module._trainer = SimpleNamespace(loggers=[logger], global_step=7)
    image = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    mask = torch.zeros(3, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    pred = torch.full((3, 1, 32, 32), 0.25)
    pred[:, :, 8:24, 8:24] = 1.0

    module._log_examples({"image": image, "mask": mask}, pred)

    (key, images, step, kwargs), = logger.calls
    assert key == "val/examples" and step == 7 and len(images) == 2 == len(kwargs["caption"])
    for i, row in enumerate(images):
        assert isinstance(row, np.ndarray) and row.dtype == np.uint8 and row.shape == (32, 96, 3)
        np.testing.assert_array_equal(row[:, :32], image[i].numpy())  # the frame as it was
        assert row[16, 32 + 16].tolist() == [255] * 3 and row[0, 32].tolist() == [0] * 3  # the mask
        assert row[16, 64 + 16].tolist() == [255] * 3 and row[0, 64].tolist() == [64] * 3  # map 1.0 and 0.25


def test_val_examples_are_frames_with_an_object_wherever_they_come_in_the_epoch():
    module = SaliencyModule(model={"width_mult": 0.125, "input_size": [32, 32]}, optimizer=OPTIMIZER, log_images=2)
    logger = ImageLogger()
    module._trainer = SimpleNamespace(loggers=[logger], global_step=3, sanity_checking=False)
    module._log_metrics = lambda stage, metrics: None
    image = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    empty, pred = torch.zeros(4, 1, 32, 32), torch.full((4, 1, 32, 32), 0.5)
    with_object = empty.clone()
    with_object[1:3, :, 4:12, 4:12] = 1  # frames 1 and 2 of the second batch show the object
    module._collect_examples({"image": image, "mask": empty}, pred)  # a first batch of empty masks
    module._collect_examples({"image": image + 1, "mask": with_object}, pred)
    module.on_validation_epoch_end()

    (key, images, step, _), = logger.calls
    assert key == "val/examples" and len(images) == 2
    for row, i in zip(images, (1, 2), strict=True):
        np.testing.assert_array_equal(row[:, :32], (image[i] + 1).numpy())
        assert row[:, 32:64].max() == 255  # the mask holds the object
    assert module._examples == []  # the next epoch picks afresh
