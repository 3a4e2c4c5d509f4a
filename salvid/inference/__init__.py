"""Inference: saliency maps from frames (the core), written per video (predicting), scored against masks
(scoring), with their writers and report figures."""
