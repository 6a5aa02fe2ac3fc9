"""`stemseg train` command: help, clear errors, and (once the data reader exists) a tiny run."""
import pytest

from stemseg_core.cli import main


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--config", "--data", "--out", "--resume", "--init", "--set", "--device",
                "--max-steps", "torchrun"):
        assert opt in out


def test_missing_data_dir(tmp_path, capsys):
    rc = main(["train", "--config", "x.yaml", "--data", str(tmp_path / "nope"),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "data directory not found" in capsys.readouterr().err


def test_missing_one_of_several_data_dirs(tmp_path, capsys):
    rc = main(["train", "--config", "x.yaml", "--data", str(tmp_path), str(tmp_path / "gone"),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    assert f"data directory not found: {tmp_path / 'gone'}" in capsys.readouterr().err


def test_existing_out_without_resume(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    rc = main(["train", "--config", "x.yaml", "--data", str(tmp_path),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "another --out" in err


def test_resume_without_checkpoint(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--resume"])
    assert rc == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_bad_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lrr: 0.1\n")
    rc = main(["train", "--config", str(cfg), "--data", str(tmp_path),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "lr" in capsys.readouterr().err


def test_tiny_end_to_end_with_resume(tmp_path, tiny_overrides):
    """Real model + real data reader on a tiny synthetic set: 2 steps, then resume to 3."""
    from stemseg_core.checkpoint import load_checkpoint
    from stemseg_core.data import synth

    data = tmp_path / "data"
    synth.generate_dataset(data, sequences=1, frames=6, height=64, width=128, seed=0,
                           val_fraction=0.0)
    run = tmp_path / "run"
    args = ["train", "--config", "config/model/demo_cpu.yaml", "--data", str(data),
            "--out", str(run), "--device", "cpu", "--no-progress", "--max-steps", "3",
            "--set", *tiny_overrides, "train.batch_size=1", "data.num_workers=0",
            "train.checkpoint_every=2", "train.image_log_every=2"]
    assert main([*args, "--stop-at", "2"]) == 0
    assert main([a for a in args if a not in ("--config", "config/model/demo_cpu.yaml")]
                + ["--resume"]) == 0
    _, payload = load_checkpoint(run / "last.pt")
    assert payload["train_state"]["step"] == 3
    assert (run / "loss.png").is_file() and (run / "config.yaml").is_file()
