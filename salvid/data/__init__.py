"""Data: frame sources (decoded video or image folders) and masks, dataset layouts read as distributed, splits
and folds, still images as pseudo-clips, the triplet stream and the DataModule; acquire/ downloads and makes
copies."""
