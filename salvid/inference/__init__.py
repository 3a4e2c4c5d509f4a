"""Inference: saliency maps from frames (the core, on the backend chosen for this machine), written per video
(predicting), scored against masks (scoring), with their writers and report figures."""
