"""Running TrackEval quietly, shared by the KITTI MOTS and DAVIS evaluations.

``run_trackeval(make_dataset, metrics)`` evaluates one dataset with every printout, summary
file, plot and error log of TrackEval switched off; its stdout chatter is captured and added to
the :class:`EvaluationError` only when TrackEval fails.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any


class EvaluationError(FileNotFoundError):
    """Missing or malformed GT / results / seqmap; the message names the path."""


def run_trackeval(make_dataset: Callable[[], Any], metrics: Sequence[Any]) -> dict:
    """Build the dataset with ``make_dataset()`` (TrackEval reads files while building it) and
    evaluate ``metrics`` on it. Returns TrackEval's result dict (``{dataset: {tracker: ...}}``).
    Raises EvaluationError with the last lines TrackEval printed."""
    import trackeval

    eval_config = trackeval.Evaluator.get_default_eval_config()
    eval_config.update({
        "USE_PARALLEL": False, "BREAK_ON_ERROR": True, "RETURN_ON_ERROR": False,
        "LOG_ON_ERROR": None, "PRINT_RESULTS": False, "PRINT_ONLY_COMBINED": True,
        "PRINT_CONFIG": False, "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True,
        "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
    })
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            evaluator = trackeval.Evaluator(eval_config)
            res, _ = evaluator.evaluate([make_dataset()], list(metrics))
            return res
    except trackeval.utils.TrackEvalException as e:
        tail = buf.getvalue().strip().splitlines()[-3:]
        detail = (" [" + " | ".join(tail) + "]") if tail else ""
        raise EvaluationError(f"TrackEval: {e}{detail}") from e
