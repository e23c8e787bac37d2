"""`gristmill eval`: the scoring arithmetic by hand, task reading, and agreement with plain transformers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import ConfigError
from gristmill.tokenizer.byte_lengths import TokenBytes
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.eval_sets import (
    EncodedTask,
    EncodedTexts,
    TaskItem,
    bits_per_byte,
    encode_pairs,
    encode_task,
    parse_task,
    task_totals,
    text_totals,
)
from gristmill.trainer.scoring import pack, plan_windows, windows
from gristmill.trainer.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
transformers = pytest.importorskip("transformers")


# -- arithmetic by hand -----------------------------------------------------------------------------------


def test_windows_score_every_token_once_with_context_within_the_model():
    assert windows(5, 1, 8) == [(0, 4, 1)]  # fits: one window, inputs 0..3 predict 1..4
    assert windows(10, 6, 4) == [(5, 9, 6)]  # a task: the context cut on the left, as lm-eval-harness does
    # a long text: the first window full, then half a window of new targets after half a window of context
    assert windows(12, 1, 4) == [(0, 4, 1), (2, 6, 5), (4, 8, 7), (6, 10, 9), (7, 11, 11)]
    for length, first, max_len in [(100, 1, 16), (37, 20, 8), (9, 8, 2), (64, 3, 64)]:
        scored = []
        for start, end, count_from in windows(length, first, max_len):
            assert end - start <= max_len and start < count_from <= end + 1
            scored += list(range(count_from, end + 1))
        assert scored == list(range(first, length))
    with pytest.raises(ValueError, match="≥ 1"):
        windows(5, 0, 8)


def test_windows_pack_into_batches_and_come_back_in_order():
    sequences = [np.arange(n) for n in (5, 30, 3, 12)]
    items = plan_windows(sequences, [1, 2, 1, 11], max_len=8)
    batches = pack(items, batch_tokens=10)
    assert [w for b in batches for w in b] == items
    assert all(sum(w.tokens for w in b) <= 10 or len(b) == 1 for b in batches)


class _HandTokenizer:
    """Ids 0 bos, 1 eos, 2 pad; 3 "▁ab" (3 bytes, dummy-prefixed at a document start), 4 "cde", 5 "é"."""

    bos_id, eos_id, pad_id = 0, 1, 2
    framing = SimpleNamespace(bos_id=0)

    def token_bytes(self) -> TokenBytes:
        return TokenBytes(
            np.array([0, 0, 0, 3, 3, 2]), True, np.array([False, False, False, True, False, False])
        )


def test_bits_per_byte_against_a_hand_computation():
    # a whole document [bos ▁ab cde é eos] and a piece continuing a document [cde ▁ab é]
    texts = EncodedTexts("hand", [np.array([0, 3, 4, 5, 1]), np.array([4, 3, 5])])
    nll = [np.array([1.0, 2.0, 0.5, 0.25]), np.array([3.0, 1.5])]
    totals = text_totals(texts, nll, _HandTokenizer())
    # text targets: ▁ab (2 bytes: its space is the dummy prefix after bos), cde 3, é 2; then ▁ab 3, é 2
    assert totals.bytes == 2 + 3 + 2 + 3 + 2
    assert totals.tokens == 5 and totals.targets_all == 6
    assert totals.nll == pytest.approx(1.0 + 2.0 + 0.5 + 3.0 + 1.5)
    assert totals.bpb == pytest.approx(8.0 / (math.log(2) * 12))
    assert totals.loss == pytest.approx(8.25 / 6)  # the loss counts the eos target too
    assert bits_per_byte(math.log(2) * 10, 5) == pytest.approx(2.0)
    assert math.isnan(bits_per_byte(1.0, 0))


def test_task_accuracies_and_gold_bits_per_byte_against_a_hand_computation():
    def item(gold, chars, gold_bytes):
        return TaskItem(0, gold, [np.zeros(2)] * len(chars), [1] * len(chars), chars, gold_bytes)

    task = EncodedTask("t:v", [item(1, [4, 40], 10), item(0, [5, 5], 5)])
    # item 1: LL -2 (4 chars) vs -3 (40 chars): acc picks 0 (wrong), acc_norm picks 1 (right)
    # item 2: LL -1 vs -0.5: both pick 1 (wrong)
    nll = [np.array([1.5, 0.5]), np.array([3.0]), np.array([1.0]), np.array([0.25, 0.25])]
    totals = task_totals(task, nll)
    assert (totals.items, totals.correct, totals.correct_norm) == (2, 0, 1)
    assert (totals.acc, totals.acc_norm) == (0.0, 0.5)
    assert totals.bpb == pytest.approx((3.0 / (math.log(2) * 10) + 1.0 / (math.log(2) * 5)) / 2)


# -- task reading -----------------------------------------------------------------------------------------


def test_tasks_are_read_as_items_with_their_gold_and_without_unconditional_requests(builds):
    tokenizer = builds.tokenizer
    arc = encode_task("arc_easy:rc_0shot", tokenizer, limit=30)
    assert len(arc.items) == 30 and arc.choices
    assert [i.doc_id for i in arc.items] == list(
        range(30)
    )  # the uncond. requests (doc_id ≥ 10⁶) are not items
    first = arc.items[0]
    assert len(first.sequences) == 4 and first.gold == 0  # "cellular telephone" is item 0's answer
    lambada = encode_task("lambada:bpb_0shot", tokenizer, limit=5)
    assert not lambada.choices and all(len(i.sequences) == 1 and i.gold == 0 for i in lambada.items)
    with pytest.raises(ConfigError, match="task:variant"):
        parse_task("arc_easy")


def test_a_context_ending_in_spaces_gives_them_to_the_continuation(builds):
    tokenizer = builds.tokenizer
    (ctx, cont), (ctx2, cont2) = encode_pairs(tokenizer, [("Answer: ", "yes"), ("Answer:", " yes")])
    assert ctx.tolist() == ctx2.tolist() and cont.tolist() == cont2.tolist()
    assert tokenizer.decode(cont) == " yes"


# -- agreement with transformers --------------------------------------------------------------------------

TASKS = {"arc_easy:rc_0shot": 150, "piqa:rc_0shot": 150}  # 300 items, about 900 requests


@pytest.fixture(scope="module")
def sentencepiece_build(build_fixture, tmp_path_factory):
    """A build tokenized with a llama2-profile sentencepiece tokenizer: bos first, a dummy-prefix space."""
    from rich.console import Console

    from gristmill.tokenizer.config import TokenizerTrainConfig
    from gristmill.tokenizer.train import train_tokenizer

    texts, _ = build_fixture.documents()
    root = tmp_path_factory.mktemp("sp")
    config = TokenizerTrainConfig(profile="llama2", vocab_size=600, sample_bytes=10**8, heldout_fraction=0.05)
    trained = train_tokenizer(
        config, [(t, "docs", "pydoc") for t in texts], root / "tok", seed=1, console=Console(quiet=True)
    )
    build_fixture.write_build(root / "build", texts, trained.tokenizer, build_fixture.TRAIN_STAGES, name="sp")
    return root / "build"


def _trained_export(build: Path, out: Path) -> Path:
    cfg = parse_train_config(
        dict(
            build=str(build),
            model="llama-tiny",
            output_dir=str(out / "run"),
            micro_batch_tokens=512,
            max_steps=12,
            optimizer={"lr": 1e-2},
            eval={"holdout_rows": 16, "every_steps": 12},
        )
    )
    train(cfg, console=lambda line: None)
    result = CliRunner().invoke(cli, ["export", str(out / "run"), "--hf", str(out / "hf")])
    assert result.exit_code == 0, result.output
    return out / "hf"


def _plain_transformers(model_dir: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """Each continuation's log-likelihood after its context, computed with transformers alone."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = transformers.LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for context, continuation in pairs:
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole = tokenizer(context + continuation)["input_ids"]  # bos first where the model trained so
            n = len(tokenizer(context)["input_ids"])
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), dim=-1)
            out.append(float(sum(logp[n - 1 + k, t] for k, t in enumerate(whole[n:]))))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["byte-level BPE", "sentencepiece llama2"])
def test_eval_of_an_exported_model_agrees_with_plain_transformers(
    builds, sentencepiece_build, tmp_path, which
):
    from gristmill.benchmarks import read_requests, unconditional_offset
    from gristmill.trainer.evaluate import load_model

    build = builds.train if which == "byte-level BPE" else sentencepiece_build
    hf_dir = _trained_export(build, tmp_path)
    loaded = load_model(str(hf_dir), torch.device("cpu"), torch.float32)
    assert loaded.kind == "Hugging Face Llama (gristmill's model)"

    args = ["eval", str(hf_dir), "--json", "--limit", "150"]
    for spec in TASKS:
        args += ["--tasks", spec]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    for spec, limit in TASKS.items():
        ours_task = encode_task(spec, loaded.tokenizer, limit)
        sequences = [s for item in ours_task.items for s in item.sequences]
        firsts = [f for item in ours_task.items for f in item.firsts]
        ours = [float(n.sum()) * -1 for n in loaded.scorer.nll(sequences, firsts)]

        task, variant = spec.split(":")
        offset = unconditional_offset(task, variant)
        requests = sorted(
            (
                r
                for r in read_requests(task, variant)
                if r.doc_id < offset and r.doc_id in {i.doc_id for i in ours_task.items}
            ),
            key=lambda r: (r.doc_id, r.idx),
        )
        theirs = _plain_transformers(hf_dir, [(r.context, r.continuation) for r in requests])
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)

        correct = correct_norm = 0
        k = 0
        for item in ours_task.items:
            ll = np.array(theirs[k : k + len(item.sequences)])
            k += len(item.sequences)
            correct += int(np.argmax(ll) == item.gold)
            correct_norm += int(np.argmax(ll / np.array(item.chars)) == item.gold)
        figures = report["tasks"][spec]
        assert figures["items"] == limit
        assert figures["acc"] == correct / limit and figures["acc_norm"] == correct_norm / limit


def test_the_trainers_evaluation_and_gristmill_eval_give_the_same_figures(builds, tmp_path):
    """The in-loop evaluation at the last step and `gristmill eval` of the checkpoint (the run's own held-out
    rows by default, and a text file) agree, and per source."""
    text = tmp_path / "docs.jsonl"
    text.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["The for statement iterates.", "Raise it."])
    )
    cfg = parse_train_config(
        dict(
            build=str(builds.train),
            model="llama-tiny",
            output_dir=str(tmp_path / "run"),
            micro_batch_tokens=512,
            max_steps=6,
            eval={"holdout_rows": 24, "every_steps": 3, "batches": 2, "text": {"docs": [str(text)]}},
        )
    )
    result = train(cfg, console=lambda line: None)
    last = result.evals[6]
    # the loop scores 2 micro-batches of 8 rows: the first 16 of the 24 held-out rows, in the holdout's order
    args = ["eval", str(tmp_path / "run"), "--text", f"docs={text}", "--max-rows", "16", "--json"]
    cli_result = CliRunner().invoke(cli, args)
    assert cli_result.exit_code == 0, cli_result.output
    report = json.loads(cli_result.stdout)
    assert (report["rows"]["holdout_rows"], report["rows"]["rows"]) == (24, 16)
    assert report["texts"]["docs"]["bpb"] == pytest.approx(last["text_bpb/docs"], rel=1e-9)
    assert report["held_out"]["bpb"] == pytest.approx(last["eval_bpb"], rel=1e-9)
    assert report["held_out"]["loss"] == pytest.approx(last["eval_loss"], rel=1e-9)
    assert report["held_out"]["sources"]["docs"]["bpb"] == pytest.approx(last["eval_bpb/docs"], rel=1e-9)


def test_eval_cli_lists_tasks_and_names_what_it_cannot_read(builds, tmp_path):
    listed = CliRunner().invoke(cli, ["eval", "--list-tasks"])
    assert listed.exit_code == 0 and "arc_easy: " in listed.output and "rc_0shot" in listed.output
    bad = CliRunner().invoke(cli, ["eval", str(builds.train), "--tasks", "arc_easy"])
    assert bad.exit_code == 1 and "no checkpoint here" in bad.output


def test_a_rank_with_fewer_batches_runs_as_many_forwards_as_the_others(builds):
    """Under FSDP every rank must run the same forwards: a rank out of windows runs empty ones."""
    from gristmill.trainer.config import model_preset
    from gristmill.trainer.model import Transformer
    from gristmill.trainer.scoring import ModelScorer

    model = Transformer(model_preset("llama-tiny", vocab_size=384))
    calls = []
    real_forward = model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[1])
        return real_forward(*args, **kwargs)

    model.forward = counting
    sequences = [np.arange(1, 40) % 384, np.arange(3, 30) % 384]
    alone = ModelScorer(model, torch.device("cpu"), 64, 64).nll(sequences, [1, 1])
    assert len(calls) == 1
    calls.clear()
    padded = ModelScorer(model, torch.device("cpu"), 64, 64, batches_everywhere=lambda n: n + 2).nll(
        sequences, [1, 1]
    )
    assert len(calls) == 3 and calls[1:] == [1, 1]  # two empty forwards of one token
    for a, b in zip(alone, padded):
        np.testing.assert_array_equal(a, b)
