"""Data: frame sources (decoded video or image folders), masks, and the embedded synthetic dataset."""
