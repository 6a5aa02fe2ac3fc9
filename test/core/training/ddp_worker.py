"""Run under `torchrun --nproc-per-node 2`: a few DDP steps of the fake model with gloo on CPU.

Each rank writes the checksum of its weights to OUT/checksum_rank<R>.txt.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from training_fakes import fake_config, make_trainer, weights_checksum  # noqa: E402

from stemseg_core.training.distributed import cleanup_distributed  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1])
    t = make_trainer(out, fake_config(["train.max_steps=4", "train.checkpoint_every=2"]),
                     stop_at=int(sys.argv[2]) if len(sys.argv) > 2 else None,
                     resume=len(sys.argv) > 3)
    assert t.ctx.world_size == 2, t.ctx
    t.train()
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ["RANK"])
    (out / f"checksum_rank{rank}.txt").write_text(repr(weights_checksum(t.model)))
    cleanup_distributed()
