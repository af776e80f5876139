"""A training request carried out: its outputs checked before any data or model loads, then the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..training.request import TrainRequest

if TYPE_CHECKING:
    from ..progress import ProgressCallback
    from ..training.config import TrainConfig
    from ..training.train import TrainResult


def run(request: TrainRequest, progress: ProgressCallback | None = None) -> TrainResult | dict[str, Any] | None:
    """Train as ``request`` asks; the result on the main process, None on torchrun's other ranks. A
    probe (``config.probe``) is fitted on cached features and gives its summary instead.

    Raises:
        InputError: an unfinished run waits beside ``out`` and ``resume`` was not given.
        OutputError: ``out`` or ``log`` would replace an input or a file that is not ours.
        As ``aigdetect.training.train.train`` (or ``training.probe.fit_probe``) besides.
    """
    from ..engine.distributed import is_main_process

    _check_outputs(request.config, request.overwrite)
    if request.config.probe is not None:
        from ..training.probe import fit_probe

        return fit_probe(request.config, progress, command=request.command)
    from ..training.train import train

    result = train(request.config, progress, command=request.command)
    return result if is_main_process() else None


def _check_outputs(config: TrainConfig, overwrite: bool) -> None:
    """Refuse, before training, a detector or log path that would destroy an input or another file
    (an existing log is appended to, so it must be an earlier training log)."""
    from ..outputs import CHECKPOINT, TRAIN_LOG, Output, OutputError, check_output, is_special
    from ..training.state import refuse_unfinished_state

    if config.resume is None:  # an unfinished run beside `out` is better answered by --resume than by --overwrite
        refuse_unfinished_state(config.state_path)
    reads = [p for p in (config.data, config.real, config.fake, config.val, config.resume, config.backbone_weights) if p]
    detector = Output.of(config.out, CHECKPOINT, "out")
    check_output(detector, overwrite=overwrite or config.resume is not None, reads=reads)
    if is_special(config.out):
        raise OutputError(f"`out` {config.out} is not a regular file; the training state is saved beside it")
    if config.log:
        check_output(Output.of(config.log, TRAIN_LOG, "log"), overwrite=True, reads=reads, others=[detector])
