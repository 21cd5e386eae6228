"""The distill and eval commands end to end, on tiny settings."""
import json

import pytest
import torch

from ternlib import load, ternary_modules
from ternlib.cli import main
from ternlib.data.corpus import brown_documents, is_training_document, training_sentences

TINY = ["--steps", "3", "--batch-size", "4", "--max-seq-length", "16", "--train-sentences", "40", "--threads", "1"]


def test_training_text_is_disjoint_from_genre_evaluation():
    docs = brown_documents()
    assert len(docs) == 500 and sum(t for _, _, t in docs) == 369
    assert [is_training_document(i) for i in range(8)] == [False, True, True, True, False, True, True, True]
    sents = training_sentences()
    assert len(sents) > 30_000
    assert training_sentences(10, seed=1) == training_sentences(10, seed=1) != training_sentences(10, seed=2)


def test_distill_resume_and_eval_commands(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--recipe", "paper", "--out", str(out), "--stop-after", "2", *TINY]) == 0
    assert "without --stop-after to resume" in capsys.readouterr().out
    assert not (out / "model").exists()
    assert main(["distill", "--recipe", "paper", "--out", str(out), *TINY]) == 0  # resumes at step 2
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3]
    run = json.loads((out / "run.json").read_text())
    assert run["ternary_config"]["beta"] == 2.0 and run["distill_config"]["losses"] == {"hidden_mse": 1.0}
    model = load(out / "model")
    assert len(list(ternary_modules(model))) == 37
    res = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--threads", "1",
                 "--out", str(res)]) == 0
    table = capsys.readouterr().out
    assert "lee-sts" in table and json.loads(res.read_text())["tasks"]["lee-sts"]["main"] > -1
    # --dtype bfloat16: the whole model cast to bf16 (float activations through the half CPU path)
    res16 = tmp_path / "eval_bf16.json"
    assert main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--threads", "1",
                 "--activations", "float", "--dtype", "bfloat16", "--out", str(res16)]) == 0
    r16, r32 = json.loads(res16.read_text()), json.loads(res.read_text())
    assert r16["dtype"] == "bfloat16" and r32["dtype"] == "float32"
    assert abs(r16["tasks"]["lee-sts"]["main"] - r32["tasks"]["lee-sts"]["main"]) < 0.05
    # --lean: the same model through LeanEncoder (the benchmark's serving path); float activations: the same scores
    lean = tmp_path / "eval_lean.json"
    assert main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--threads", "1",
                 "--lean", "--out", str(lean)]) == 0
    rl = json.loads(lean.read_text())
    assert rl["encoder"] == "LeanEncoder" and r32["encoder"] == "model.encode"
    assert abs(rl["tasks"]["lee-sts"]["main"] - r32["tasks"]["lee-sts"]["main"]) < 1e-4
    with pytest.raises(SystemExit, match="evaluate --lean without it"):
        main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--lean", "--record"])
    with pytest.raises(SystemExit, match="--record stores the float32 model's scores"):
        main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--dtype", "bfloat16", "--record"])
    # --record: the scores at each activation precision go into the checkpoint, which load then reads
    for act in ("float", "int8"):
        assert main(["eval", "--model", str(out / "model"), "--fast", "--tasks", "lee-sts", "--threads", "1",
                     "--activations", act, "--record"]) == 0
        assert f"recorded the {act} activations' scores" in capsys.readouterr().out
    quality = json.loads((out / "model" / "quality.json").read_text())["activations"]
    assert set(quality) == {"float", "int8"} and set(quality["int8"]["tasks"]) == {"lee-sts"}
    from ternlib.checkpoint import default_activations

    lost = quality["float"]["average"] - quality["int8"]["average"]
    assert default_activations(out / "model") == ("int8" if lost <= 0.005 else "float")
    with pytest.raises(SystemExit, match="--record writes into a ternlib checkpoint"):
        main(["eval", "--fast", "--tasks", "lee-sts", "--record"])  # FP32 MiniLM: nothing to record into


def test_distill_command_rejects_bad_losses(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--out", str(tmp_path), "--losses", "hidden_mse=lots", *TINY])
    assert "--losses: cannot read the weight in 'hidden_mse=lots'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown loss terms"):
        main(["distill", "--out", str(tmp_path), "--losses", "kl=1", *TINY])
    with pytest.raises(SystemExit):
        main(["distill", "--out", str(tmp_path), "--recipe", "magic", *TINY])
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_large_batch_recipe_and_device_option(tmp_path):
    from ternlib.distill import recipe

    t, d = recipe("large-batch")
    assert (d.batch_size, d.steps, d.bf16, d.losses["contrastive"], t.beta) == (256, 1200, True, 0.3, 1.5)
    out = tmp_path / "run"
    assert main(["distill", "--recipe", "large-batch", "--device", "cpu", "--out", str(out), *TINY]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["distill_config"]["batch_size"] == 4 and run["distill_config"]["losses"]["contrastive"] == 0.3
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA GPU"):
            main(["distill", "--device", "cuda", "--out", str(tmp_path / "gpu"), *TINY])


def test_queue_kl_recipe_runs_with_a_smaller_queue(tmp_path):
    from ternlib.distill import recipe

    t, d = recipe("queue-kl")
    assert (d.batch_size, d.steps, d.queue_size, d.losses["similarity_kl"], t.beta) == (32, 2500, 4096, 1.0, 1.5)
    out = tmp_path / "run"
    assert main(["distill", "--recipe", "queue-kl", "--queue-size", "8", "--out", str(out), *TINY]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["distill_config"]["queue_size"] == 8 and run["distill_config"]["losses"]["similarity_kl"] == 1.0
    history = json.loads((out / "history.json").read_text())
    assert all("similarity_kl" in h for h in history if "loss" in h)


def test_large_batch_cpu_recipe_is_the_gpu_recipe_in_micro_batches(tmp_path):
    from ternlib.distill import recipe

    (tg, dg), (tc, dc) = recipe("large-batch"), recipe("large-batch-cpu")
    assert tg == tc and dc.micro_batch_size == 32 and dc.steps == 540
    assert {k: v for k, v in dc.to_dict().items() if k not in ("micro_batch_size", "steps")} == \
        {k: v for k, v in dg.to_dict().items() if k not in ("micro_batch_size", "steps")}
    out = tmp_path / "run"
    assert main(["distill", "--recipe", "large-batch-cpu", "--micro-batch-size", "2", "--cache-teacher",
                 "--checkpoint-every", "1", "--keep-checkpoints", "1", "--out", str(out), *TINY]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["distill_config"]["micro_batch_size"] == 2 and run["distill_config"]["batch_size"] == 4
    assert len(list((out / "training").glob("step_*"))) == 1  # --keep-checkpoints 1
