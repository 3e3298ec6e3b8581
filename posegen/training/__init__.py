"""Training: the one loop for every objective and every model that learns (batch sources, schedule, time and
step budgets, EMA, validation, atomic checkpoints, resume, DDP)."""

from .config import DEFAULT_OBJECTIVE, TrainConfig, TrainingDiverged, TrainResult, make_config
from .ema import EMA
from .schedule import lr_factor
from .sources import Batch, BatchSource, DatasetSource, StreamSource
from .trainer import Trainer, train

__all__ = ["train", "Trainer", "TrainConfig", "TrainResult", "TrainingDiverged", "EMA", "DEFAULT_OBJECTIVE",
           "BatchSource", "DatasetSource", "StreamSource", "Batch", "lr_factor", "make_config"]
