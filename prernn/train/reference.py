"""Reference rows of every table (ours): what a model must beat to have learned anything.

  constant   the training set's mean target for every frame (the mean landmark shape),
             or its class frequencies as the prediction for every video
  probe      a linear read-out of the frozen pre-trained backbone's features (its
             ``feature_dim`` output: fc7, or ResNet's pooled layer4), fitted on the
             training videos: ridge regression per frame for landmarks, a logistic
             regression of the time-averaged features for classes (fused over the
             streams like the networks'); its L2 strength is chosen on the last fifth
             of the training videos, then it is refitted on all of them
  per-frame  the fine-tuned CNN without recurrence: a PreVRNN whose U stays zero, trained
             like every other network (``prernn.trial.build_network``)

``constant`` and ``probe`` are not trained by SGD: each is one "epoch" whose row holds
its metrics (``train_loss``: the training-set loss of the same predictor).
"""

from __future__ import annotations

import time

from ..config import TrialConfig
from ..tasks import TASKS
from .device import Placement
from .pretrain import _features, constant_prediction, linear_probe


def run_reference(cfg: TrialConfig, streams: dict, place: Placement, log=print) -> dict:
    """``streams``: stream name -> (backbone or None, train split, evaluation split).
    Returns run_trial's result: metrics, a one-row history, parameters."""
    start = time.monotonic()
    task = TASKS[cfg.task]
    preds, train_preds, parameters = {}, {}, 0
    for name, (backbone, train, test) in streams.items():
        if cfg.model.model == "constant":
            preds[name] = constant_prediction(task, train.targets, test.targets, _steps(test))
            train_preds[name] = constant_prediction(task, train.targets, train.targets, _steps(train))
            continue
        channels = task.channels
        fit, _ = _features(backbone.to(place.device), train, channels, place)
        feats, _ = _features(backbone, test, channels, place)
        n_fit = max(1, (4 * len(train)) // 5)
        _, preds[name] = linear_probe(task, fit, train.targets, n_fit, test=feats)
        _, train_preds[name] = linear_probe(task, fit, train.targets, n_fit, test=fit)
        parameters += (backbone.feature_dim + 1) * task.num_outputs
        log(f"{name} stream: linear probe on {fit.shape[-1]} features of {len(train)} training videos")
    first = next(iter(streams.values()))
    metrics = _metrics(task, preds, first[2])
    train_loss = _metrics(task, train_preds, first[1])["test_loss"]
    row = {"epoch": 0, "train_loss": train_loss, "lr": 0.0, **metrics, "epoch_seconds": time.monotonic() - start}
    return {"metrics": cfg.final_metrics(row), "history": [row], "parameters": parameters}


def _steps(split) -> int:
    return split.frames.shape[1]


def _metrics(task, preds: dict, split) -> dict:
    return task.metrics(preds if len(preds) > 1 else next(iter(preds.values())), split.targets, mask=split.mask,
                        groups=split.groups)
