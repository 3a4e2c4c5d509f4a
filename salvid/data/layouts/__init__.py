"""Dataset layouts: each lists sequences -> frames -> masks as its authors distribute them."""

from salvid.data.layouts.base import DatasetError, Sequence, read_split
from salvid.data.layouts.videos import video_folder

__all__ = ["DatasetError", "Sequence", "read_split", "video_folder"]
