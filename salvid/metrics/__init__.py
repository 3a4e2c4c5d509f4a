"""Saliency metrics: pure per-frame functions (``functional``) and torchmetrics classes."""

from salvid.metrics.saliency import (
    AUC,
    MAE,
    METRICS,
    NSS,
    PLCC,
    EMeasure,
    FMeasure,
    SaliencyMetrics,
    SMeasure,
)

__all__ = ["AUC", "MAE", "METRICS", "NSS", "PLCC", "EMeasure", "FMeasure", "SMeasure", "SaliencyMetrics"]
