"""salvid from Python: a ready network by name, maps in one call, models saved and shared as folders.

    import salvid
    model = salvid.load()                              # the default model; or a name, folder, file, owner/name
    maps = model.predict(frames)                       # consecutive RGB uint8 frames (H, W, 3) -> (N, H, W)
    maps = salvid.predict_video("clip.mp4")            # every frame of a video or frame folder
    model = salvid.load(tta="flip")                    # each map averaged with that of the mirrored clip
    model.save_pretrained("my-model")                  # config.json + model.safetensors
    model.push_to_hub("me/my-model")                   # with huggingface_hub and a login
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salvid.checkpoints import load_network, model_name, save_folder
from salvid.data.sources import FrameSource
from salvid.errors import DataError
from salvid.inference.core import NetworkSaliency, Prediction
from salvid.inference.predicting import resolve_inputs
from salvid.inference.tta import check_tta, network_saliency
from salvid.models.families import family_of


class _Frames(FrameSource):
    """Frames already in memory, as a frame source."""

    def __init__(self, frames: Sequence[np.ndarray]):
        if isinstance(frames, np.ndarray) and frames.ndim == 3 and frames.shape[-1] == 3:
            raise DataError(f"predict(frames): one {frames.shape} frame; pass the clip's frames, a list of them or "
                            "an (N, H, W, 3) array: each map needs the frames before and after it")
        self.frames = [np.asarray(f) for f in frames]
        self.path = Path("<frames>")
        if not self.frames:
            raise DataError("predict(frames): no frames given")
        first = self.frames[0]
        for i, f in enumerate(self.frames):
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != first.shape:
                raise DataError(f"predict(frames): frame {i} is {f.dtype} {f.shape}; every frame must be RGB uint8 "
                                f"(H, W, 3) of one size, like frame 0 {first.shape}")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[:2]

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self.frames[i] for i in indices])


def _source(video: str | Path) -> FrameSource:
    """The frames of one video file or frame folder, read as ``predict`` reads its input."""
    inputs = resolve_inputs(str(video))
    if len(inputs) != 1:
        raise DataError(f"{video}: {len(inputs)} videos; give one video file or frame folder")
    return inputs[0].source


class SaliencyModel:
    """A network ready to draw saliency maps: what :func:`load` returns."""

    def __init__(self, net, config: dict[str, Any], name: str, device: str = "auto", precision: str = "auto",
                 backend: str = "auto", batch_size: int = 8, tta: str = "none"):
        self.config = config
        self.name = name
        self.batch_size = batch_size
        self.runner: NetworkSaliency = network_saliency(net, name, tta=tta, device=device, precision=precision,
                                                        backend=backend, model_config=config)

    @property
    def net(self):
        return self.runner.net

    def __repr__(self) -> str:
        runner = self.runner
        precision = "fp32" if runner.dtype is None else "bf16" if "bfloat16" in str(runner.dtype) else str(runner.dtype)
        return (f"SaliencyModel({self.name!r}, family={family_of(self.config).name!r}, "
                f"input_size={list(self.net.input_size)}, device={runner.device.type!r}, backend={runner.backend!r}, "
                f"precision={precision!r})")

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Maps ``(N, H, W)`` float32 in [0, 1] of consecutive RGB uint8 frames (each map from its frame and
        its neighbours; the first and last frames repeat at the ends)."""
        return np.stack([p.saliency for p in self.runner.stream(_Frames(frames), self.batch_size)])

    def stream(self, video: str | Path) -> Iterator[Prediction]:
        """The maps of a video file or frame folder one frame at a time, in constant memory."""
        yield from self.runner.stream(_source(video), self.batch_size)

    def predict_video(self, video: str | Path) -> np.ndarray:
        """Every frame's map ``(N, H, W)`` of a video file or frame folder (:meth:`stream` for long videos)."""
        return np.stack([p.saliency for p in self.stream(video)])

    def save_pretrained(self, folder: str | Path, card: dict[str, Any] | None = None) -> Path:
        """A model folder (``config.json`` + ``model.safetensors``) that :func:`load` and the hub read."""
        return save_folder(self.net, self.config, folder, {"name": self.name, **(card or {})})

    def push_to_hub(self, repo_id: str, folder: str | Path | None = None, **upload: Any) -> str:
        """Publish the model folder to the Hugging Face hub (``pip install huggingface_hub``, then log in);
        others load it with ``salvid.load("<repo_id>")``. Returns the commit's URL."""
        import tempfile

        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise DataError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from None
        with tempfile.TemporaryDirectory() as tmp:
            saved = self.save_pretrained(folder or tmp)
            api = HfApi()
            api.create_repo(repo_id, exist_ok=True)
            return str(api.upload_folder(repo_id=repo_id, folder_path=str(saved), **upload))


def load(spec: str | Path | None = None, device: str = "auto", precision: str = "auto", backend: str = "auto",
         batch_size: int = 8, trusted: bool = False, tta: str = "none") -> SaliencyModel:
    """The model ``spec`` names, ready to predict: a model name (shipped, or exported by ``salvid.export``;
    default: the shipped default model), a model folder, a ``.safetensors`` file, a training ``.ckpt``, or a hub
    repository ``owner/name``. ``device``, ``precision``, ``backend`` and ``tta`` are ``predict``'s options of
    the same names."""
    check_tta(tta)  # before the weights are read
    net, config = load_network(spec, trusted=trusted)
    return SaliencyModel(net, config, model_name(spec), device=device, precision=precision, backend=backend,
                         batch_size=batch_size, tta=tta)


def predict_video(video: str | Path, model: str | Path | SaliencyModel | None = None, **options: Any) -> np.ndarray:
    """Every frame's map ``(N, H, W)`` of a video file or frame folder, with ``model`` (default: the shipped
    default model; ``options`` go to :func:`load`)."""
    if not isinstance(model, SaliencyModel):
        model = load(model, **options)
    return model.predict_video(video)


__all__ = ["SaliencyModel", "load", "predict_video"]
