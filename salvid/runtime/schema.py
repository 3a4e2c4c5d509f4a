"""What a valid config is: one pydantic schema per config group, checked at every entry point before any
work starts (and, through :class:`salvid.runtime.run_guard.RunGuard`, before Hydra writes anything).

A key is checked by declaring it here; the error names the key, the value and what it must be, in one line.
Groups whose keys are passed on to a library (``trainer.*`` to Lightning's ``Trainer``, a dataset layout's
own keys) allow keys not declared here; salvid's own groups do not. Model configs are judged by the network's
family (:mod:`salvid.models.config`). This module imports no torch, so a bad value is refused in about a
second.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from salvid.data.folds import fold_out_of_range
from salvid.errors import ConfigError

# The choices of salvid's own settings, checked here before the code that acts on them is imported (it needs
# torch); tests/test_run_guard.py keeps these lists and that code's equal.
LOSSES = ("mse", "bce", "bce_iou", "bce_iou_ssim")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine",)
METRIC_AVERAGES = ("video", "frame")
PRECISIONS = ("auto", "bf16", "fp32")
BACKENDS = ("auto", "torch", "onnxruntime")
TTAS = ("none", "flip")  # test-time augmentation of the network (salvid.inference.tta)
EXPORT_FORMATS = ("safetensors", "onnx")
EXPORT_WEIGHTS = ("float32", "float16")
# Lightning's Trainer(precision=...) values, and salvid's "auto" (bf16-mixed where bf16 pays here, see
# salvid.runtime.precision.trainer_precision)
TRAINER_PRECISIONS = ("auto", "16-mixed", "bf16-mixed", "32-true", "64-true", "16-true", "bf16-true",
                      "transformer-engine", "transformer-engine-float16", "16", "32", "64", "bf16", 16, 32, 64)
# Frames of one batch at inference: beyond this the batch costs memory (several GB at 480p) and gains no speed.
MAX_INFERENCE_BATCH = 256
MIN_FPS, MAX_FPS = 0.001, 1000  # a frame every 1000 s to 1000 frames a second


def loss_misfit(loss: str, output_activation: str) -> str | None:
    """Why ``loss`` cannot train a network with this output, or None: a loss on logits (every loss but ``mse``)
    needs the sigmoid output that turns logits into the map."""
    if loss != "mse" and output_activation != "sigmoid":
        return (f"module.loss={loss} works on logits and needs model.output_activation=sigmoid (it is "
                f"{output_activation}); set model.output_activation=sigmoid or module.loss=mse")
    return None


Strict = ConfigDict(extra="forbid", populate_by_name=True)
Open = ConfigDict(extra="allow", populate_by_name=True)

Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Beta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
ChannelsLast = Literal["auto"] | bool
Target = Field(default=None, alias="_target_")


def _device(value: Any) -> Any:
    """auto, cpu, mps, cuda or cuda:N, as torch names devices."""
    if isinstance(value, str) and (value in ("auto", "cpu", "mps", "cuda") or
                                   (value.startswith("cuda:") and value[5:].isdigit())):
        return value
    raise ValueError("must be auto, cpu, cuda, cuda:N or mps")


class Optimizer(BaseModel):
    model_config = Strict
    name: Literal[OPTIMIZERS]  # type: ignore[valid-type]
    lr: Rate
    backbone_lr: Rate | None = None
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    weight_decay: NonNegative = 0.0


class Scheduler(BaseModel):
    model_config = Strict
    name: Literal[SCHEDULERS]  # type: ignore[valid-type]


class Module(BaseModel):
    model_config = Strict
    target: str | None = Target
    loss: Literal[LOSSES]  # type: ignore[valid-type]
    optimizer: Optimizer
    scheduler: Scheduler | None = None
    metric_average: Literal[METRIC_AVERAGES] = "video"  # type: ignore[valid-type]
    log_images: Count = 4
    channels_last: ChannelsLast = "auto"


class Trainer(BaseModel):
    """The keys salvid's configs set; any other Lightning ``Trainer`` argument passes through."""

    model_config = Open
    precision: Literal[TRAINER_PRECISIONS] = "32-true"  # type: ignore[valid-type]
    max_epochs: int | None = None
    min_epochs: Count | None = None
    max_steps: Annotated[int, Field(strict=True, ge=-1)] = -1
    devices: Positive | Literal[-1, "auto"] | list[Count] | str = 1
    log_every_n_steps: Positive = 50
    check_val_every_n_epoch: Positive | None = 1
    limit_train_batches: Unit | Positive | None = None
    limit_val_batches: Unit | Count | None = None
    limit_test_batches: Unit | Positive | None = None
    num_sanity_val_steps: Annotated[int, Field(strict=True, ge=-1)] = 2
    accumulate_grad_batches: Positive = 1
    gradient_clip_val: NonNegative | None = None

    max_time: str | dict[str, int] | None = None

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be >= 1, or -1 (no limit)")
        return value

    @model_validator(mode="after")
    def _ends(self) -> Trainer:
        """A run that would not train (max_epochs=0) would still test and be recorded as finished; one with no
        limit at all would never reach its test."""
        epochs, limited = self.max_epochs, self.max_steps != -1 or self.max_time is not None
        if epochs is not None and epochs < 1 and not (epochs == -1 and limited):
            raise PydanticCustomError("whole", "trainer.max_epochs={epochs}: must be >= 1, or -1 (no limit) "
                                      "with trainer.max_steps or trainer.max_time set", {"epochs": epochs})
        return self


class Augment(BaseModel):
    """``data.augment``: the defaults live in :class:`salvid.data.transforms.Augmentation`."""

    model_config = Strict
    min_scale: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    flip: Unit | None = None
    colour: Unit | None = None
    zoom_out: Annotated[float, Field(ge=1, le=4, allow_inf_nan=False)] | None = None


class Data(BaseModel):
    """The keys every dataset config has; a layout's own keys are checked by the layout."""

    model_config = Open
    splits: dict[str, Any] | None = None
    batch_size: Positive = 8
    num_workers: Count = 0
    chunk_len: Positive | None = None
    buffer_size: Positive | None = None
    val_holdout: Count | None = None
    test_holdout: Count | None = None
    folds: Positive | None = None
    fold: Count | None = None
    max_frame_step: Positive = 1
    augment: Augment | None = None

    @model_validator(mode="after")
    def _fold(self) -> Data:
        """The fold of a cross-validation, refused before the run writes anything (also checked where the folds
        are cut, :func:`salvid.data.folds.check_fold_settings`)."""
        if self.folds is not None and self.fold is not None and self.fold >= self.folds:
            raise PydanticCustomError("whole", fold_out_of_range(self.fold, self.folds))
        return self


class _Entry(BaseModel):
    model_config = Open

    @classmethod
    def groups(cls) -> tuple[str, ...]:
        return ()


class TrainConfig(_Entry):
    seed: Count = 42
    test: bool = True
    test_untrained: bool = False
    module: Module
    trainer: Trainer
    data: Data

    @model_validator(mode="after")
    def _loss_fits_the_output(self) -> TrainConfig:
        model = (self.model_extra or {}).get("model") or {}
        misfit = loss_misfit(self.module.loss, model.get("output_activation", "sigmoid"))
        if misfit:
            raise PydanticCustomError("whole", misfit)
        return self

    @model_validator(mode="after")
    def _test_stage(self) -> TrainConfig:
        """Training ends by testing the best checkpoint on the test sequences: a data config without any is
        refused now rather than after training, unless the test stage is turned off (``test=false``)."""
        if not self.test:
            if self.test_untrained:
                raise PydanticCustomError("whole", "test_untrained=true needs the test stage, which test=false "
                                          "turns off; set test_untrained=false")
            return self
        data = self.data
        if data.splits is None:  # a data module of one's own: its test stage is its own business
            return self
        if data.splits.get("test") is None and not data.test_holdout and data.folds is None:
            holdout = "test_holdout" in data.model_fields_set  # a key of the configs that hold sequences out
            raise PydanticCustomError("whole", "no test sequences: data.splits.test is null" + (
                " and data.test_holdout is 0" if holdout else "") + "; set data.splits.test=<split>" + (
                " or data.test_holdout=<number of training sequences to hold out>" if holdout else "") +
                ", or train without a test stage with test=false")
        return self


class _Command(_Entry):
    """An inference or export command's config: every key is declared, so a misspelt one added with ``+`` is
    refused rather than ignored."""

    model_config = Strict
    task_name: str | None = None
    paths: dict[str, Any] | None = None
    ckpt_path: Any = None


class _Inference(_Command):
    batch_size: Annotated[int, Field(strict=True, ge=1, le=MAX_INFERENCE_BATCH)] = 8
    device: str = "auto"
    precision: Literal[PRECISIONS] = "auto"  # type: ignore[valid-type]
    backend: Literal[BACKENDS] = "auto"  # type: ignore[valid-type]
    channels_last: ChannelsLast = "auto"
    tta: Literal[TTAS] = "none"  # type: ignore[valid-type]
    trusted_checkpoint: bool = False

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return _device(value)


class PredictConfig(_Inference):
    input: Any = None
    # the videos' time base is at finest 1/1001 s: a slower rate would round to 0
    fps: Annotated[float, Field(ge=MIN_FPS, le=MAX_FPS, allow_inf_nan=False)] = 25
    overlay_alpha: Unit = 0.5
    write_pngs: bool = True
    png_compression: Annotated[int, Field(ge=0, le=9)] = 1
    write_videos: bool = True

    @model_validator(mode="after")
    def _writes_maps(self) -> PredictConfig:
        if not (self.write_pngs or self.write_videos):
            raise PydanticCustomError("whole", "write_pngs=false and write_videos=false: predict would write no "
                                      "maps; set either to true")
        return self


class EvaluateConfig(_Inference):
    seed: Any = 0
    sweep: Any = None
    logger: Any = None
    method_name: str | None = None
    image_only_ckpt: Any = None
    networks: dict[str, Any] = {}
    maps_dirs: dict[str, Any] = {}
    stage: Literal["train", "val", "test"] = "test"
    metric_average: Literal[METRIC_AVERAGES] = "video"  # type: ignore[valid-type]
    quantise_maps: bool = True
    skip_first_last: bool = False
    qualitative_frames: Count = 4
    failure_gallery: bool | Count = False  # true: every sequence; N: the N worst
    failure_method: str | None = None
    baselines: list[str] = []
    data: Data


class ExportConfig(_Command):
    output_dir: Any = None
    metrics: Any = None
    cross_validation: Any = None
    hardware: Any = None
    name: str
    format: Literal[EXPORT_FORMATS] = "safetensors"  # type: ignore[valid-type]
    weights: Literal[EXPORT_WEIGHTS] = "float32"  # type: ignore[valid-type]
    max_megabytes: Rate = 25
    trusted_checkpoint: bool = False
    overwrite: bool = False


def _located(config: dict[str, Any], location: tuple[Any, ...]) -> tuple[str, Any, bool]:
    """The dotted key and value an error's location points at. Pydantic adds the form it tried (``int``,
    ``literal[...]``) between keys: only the parts found in the config make the key."""
    key, value, found = "", config, True
    for part in location:
        if isinstance(value, dict) and part in value:
            key, value = (f"{key}.{part}" if key else str(part)), value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            key, value = f"{key}[{part}]", value[part]
        elif isinstance(part, str) and not any(c in part for c in "[-") and part not in _FORMS:
            key, found = (f"{key}.{part}" if key else part), False
    return key.replace(".target", "._target_"), value, found


_SIGNS = [("greater than or equal to", ">="), ("less than or equal to", "<="), ("greater than", ">"),
          ("less than", "<")]
_FORMS = {"int", "float", "str", "bool", "none", "list", "tuple", "dict"}


def _describe(error: dict[str, Any], config: dict[str, Any]) -> str:
    if error["type"] == "whole":  # a rule over several keys, which names them itself
        return error["msg"]
    key, value, found = _located(config, tuple(error["loc"]))
    if error["type"] == "missing" and isinstance(error["loc"][-1], int):
        return f"{key}={value!r}: too few values"
    if error["type"] == "missing":
        return f"{key}: missing; set {key}=..."
    if error["type"] == "extra_forbidden":
        parent, _, name = key.rpartition(".")
        siblings = _located(config, tuple(error["loc"][:-1]))[1]
        close = difflib.get_close_matches(name, [k for k in siblings if k != name], n=1) if isinstance(
            siblings, dict) else []
        advice = f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else "check its spelling"
        return f"{key}: not a setting of {parent or 'this command'}; {advice}"
    shown = (f"{key}={value:g}" if isinstance(value, float) else f"{key}={value!r}") if found else key
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    for words, sign in _SIGNS:
        message = message.replace(words, sign)
    return f"{shown}: {message.removesuffix(', unable to interpret input')}"


def validate(schema: type[BaseModel], cfg: DictConfig | dict[str, Any]) -> None:
    """Check ``cfg`` (an entry point's whole config, or any part the schema describes) against ``schema``;
    a :class:`ConfigError` lists every value that does not fit, naming each key."""
    config = _plain(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    try:
        schema.model_validate(config)
    except ValidationError as error:
        # one problem per key: a value that fits none of a union's forms reports once
        problems = list(dict.fromkeys(_describe(e, config) for e in error.errors()))
        raise ConfigError("; ".join(_merge(problems))) from None


def _plain(cfg: DictConfig) -> dict[str, Any]:
    """The config without ``hydra`` as plain data. An interpolation that cannot be resolved yet (evaluate's
    ``data.input_size`` comes from the checkpoint) is left out: only values that exist now are judged."""

    def resolved(node: Any, key: str) -> Any:
        if isinstance(node, dict):
            return {k: resolved(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [resolved(v, f"{key}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
            return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        return node

    raw = OmegaConf.to_container(cfg, resolve=False)
    return {k: resolved(v, str(k)) for k, v in raw.items() if k != "hydra"}


def _merge(problems: list[str]) -> list[str]:
    """``k=v: a`` and ``k=v: b`` (a union's forms) as ``k=v: a, or b``."""
    merged: dict[str, list[str]] = {}
    for problem in problems:
        head, _, reason = problem.partition(": ")
        merged.setdefault(head, []).append(reason)
    return [f"{head}: {', or '.join(reasons)}" if reasons[0] else head for head, reasons in merged.items()]
