"""`reasonrl train-rm`: train an outcome or process reward model for search, and measure how well it ranks steps.

1. Labels (search.step_labels): the policy writes solutions to synthetic training problems; each step is labelled
   by Monte-Carlo rollouts from its prefix (Math-Shepherd's soft and hard estimates), each solution by its verdict.
   The same is done on held-out problems for the evaluation. Labels are cached in the output folder.
2. Training: the policy's backbone with a new scalar head (model.reward_model), binary cross-entropy at the last
   token of every step (PRM: against the soft or hard label) or of the solution (ORM: against its verdict).
3. Evaluation on the held-out solutions, whose steps also have gold labels from the reference solutions
   (problems.reference_step_correct): step-level AUC against the gold labels (steps up to the first error) and
   against the Monte-Carlo labels, ProcessBench's first-error-step accuracy and F1, and the outcome AUC (last
   step's score against the solution's verdict). The same figures for the sympy step checker alone and combined
   with the learned model, so the report says which ranks steps better.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from evals.reward_models import best_threshold, first_error_scores, roc_auc, step_scores_and_labels
from model import ConfigError, load_tokenizer
from model.checkpoint import check_checkpoint
from model.reward_model import RewardModel, pad_right, reward_model_inputs, save_reward_model, score_steps
from model.vllm_engine import make_engine
from problems import build_prompt, load_split, reference_step_correct
from search.reward_models import combined_scores, step_checker_scores
from search.step_labels import LabelledSolution, monte_carlo_labels
from search.vllm_generator import VllmStepGenerator

LABEL_FILES = {"train": "labels_train.jsonl", "eval": "labels_eval.jsonl"}


def label_problems(policy: str | Path, problems: list, *, solutions: int, rollouts: int, max_tokens: int,
                   temperature: float, seed: int, engine=None) -> list:
    """Math-Shepherd labels for the problems' sampled solutions (a local vLLM engine serving `policy`)."""
    tokenizer = load_tokenizer(policy)
    prompts = [build_prompt(p, tokenizer) for p in problems]
    if engine is None:
        engine = make_engine(policy, max_model_len=max(map(len, prompts)) + 2 * max_tokens, seed=seed)
    generator = VllmStepGenerator(engine, tokenizer)
    return monte_carlo_labels(generator, prompts, [p.id for p in problems], [p.answer for p in problems],
                              solutions=solutions, rollouts=rollouts, max_tokens=max_tokens,
                              temperature=temperature, seed=seed)


def save_labels(path: Path, labelled: list, settings: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(json.dumps({"settings": settings}) + "\n")
        for solution in labelled:
            f.write(json.dumps(solution.to_dict()) + "\n")


def load_labels(path: Path, settings: dict) -> list | None:
    """The labelled solutions cached at path, or None when there are none or they were made with other settings."""
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    if not lines or json.loads(lines[0]).get("settings") != settings:
        return None
    return [LabelledSolution(**json.loads(line)) for line in lines[1:]]


def training_targets(solution, kind: str, label: str) -> list[float]:
    """The target of each scored position: PRM one per step (soft or hard label), ORM one (the verdict)."""
    if kind == "orm":
        return [float(solution.correct)]
    return [float(x) for x in (solution.soft if label == "soft" else solution.hard)]


def fit_reward_model(model, tokenizer, solutions: list, *, kind: str, label: str, epochs: int, lr: float,
                     batch_size: int, seed: int, log=print) -> list[float]:
    """Train in place with binary cross-entropy at the scored positions; returns each step's loss."""
    if not solutions:
        raise ValueError("no labelled solutions to train the reward model on")
    rng = random.Random(seed)
    examples = []
    for solution in solutions:
        ids, ends = reward_model_inputs(tokenizer, solution.prompt, solution.steps)
        examples.append((ids, ends[-1:] if kind == "orm" else ends, training_targets(solution, kind, label)))
    head = list(model.score.parameters())
    backbone = [p for p in model.parameters() if all(p is not q for q in head)]
    # the head starts from zeros and has everything to learn; the backbone only adapts
    optimizer = torch.optim.AdamW([{"params": backbone, "lr": lr}, {"params": head, "lr": 10 * lr}], weight_decay=0.0)
    steps = epochs * -(-len(examples) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.1, 1 - s / max(steps, 1)))
    losses, started = [], time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        epoch_start = len(losses)
        for start in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[start:start + batch_size]]
            ids, mask = pad_right([ids for ids, _, _ in batch], tokenizer.pad_token_id or 0)
            rows = torch.tensor([r for r, (_, ends, _) in enumerate(batch) for _ in ends])
            cols = torch.tensor([e for _, ends, _ in batch for e in ends])
            targets = torch.tensor([t for _, _, ts in batch for t in ts])
            logits = model(ids, attention_mask=mask)[rows, cols]
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        epoch_losses = losses[epoch_start:]
        log(f"reward model epoch {epoch + 1}/{epochs}: mean loss {sum(epoch_losses) / len(epoch_losses):.4f} "
            f"({time.perf_counter() - started:.0f}s)")
    model.eval()
    return losses


def rank_quality(step_scores: list[list[float]], solutions: list, gold: list[list[bool]], threshold: float) -> dict:
    """How well per-step scores rank the held-out steps (module docstring, point 3); first-error figures at 0.5 and
    at `threshold` (calibrated on the training solutions)."""
    flat_scores, flat_gold = step_scores_and_labels(step_scores, gold)
    mc_scores = [score for scores in step_scores for score in scores]
    mc_hard = [label for s in solutions for label in s.hard]
    at_half = first_error_scores(step_scores, gold, 0.5)
    calibrated = first_error_scores(step_scores, gold, threshold)
    return {"step_auc_gold": roc_auc(flat_scores, flat_gold),
            "step_auc_monte_carlo": roc_auc(mc_scores, mc_hard),
            "outcome_auc": roc_auc([scores[-1] for scores in step_scores], [s.correct for s in solutions]),
            "first_error_f1_at_0.5": at_half["f1"], "threshold": threshold,
            **{f"first_error_{k}": v for k, v in calibrated.items()}}


def train_reward_model(policy: str | Path, out: str | Path, *, kind: str = "prm", label: str = "soft",
                       levels: tuple[int, ...] = (2, 3), num_problems: int = 300, num_eval_problems: int = 100,
                       solutions: int = 4, rollouts: int = 8, max_tokens: int = 96, temperature: float = 1.0,
                       epochs: int = 3, lr: float = 1e-4, batch_size: int = 16, seed: int = 0,
                       labels_dir: str | Path | None = None, log=print) -> dict:
    """Label, train, save and evaluate a reward model (module docstring). Writes `<out>/model/` (the reward model
    folder), the label files (into `labels_dir`, default out; reused when their settings match) and
    `<out>/report.json`.

    Returns:
        The report: settings, label statistics, training losses and the ranking figures per scorer.

    Raises:
        ConfigError: an unknown kind or label, a count or level < 1, a policy folder that is missing or damaged,
            an output or labels path that is (or lies under) a file: before any engine starts.
    """
    if kind not in ("prm", "orm"):
        raise ConfigError(f"--kind must be prm or orm, got {kind!r}")
    if label not in ("soft", "hard"):
        raise ConfigError(f"--label must be soft or hard, got {label!r}")
    for name, value in (("num_problems", num_problems), ("num_eval_problems", num_eval_problems),
                        ("solutions", solutions), ("rollouts", rollouts), ("epochs", epochs),
                        ("max_tokens", max_tokens), ("batch_size", batch_size)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if not levels or min(levels) < 1:
        raise ConfigError(f"--levels must be synthetic levels >= 1, got {','.join(map(str, levels))}")
    check_checkpoint(policy)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's INFO lines would bury the report
    out = Path(out)
    labels_dir = Path(labels_dir) if labels_dir is not None else out
    for flag, folder in (("--out", out), ("--labels", labels_dir)):
        blocked = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise ConfigError(f"{flag} {folder}: {blocked} is a file, not a folder to write into")
    torch.manual_seed(seed)
    train_problems = load_split("synthetic", "train", num_train=num_problems, seed=seed, levels=levels)
    eval_problems = load_split("synthetic", "test", num_eval=num_eval_problems, seed=seed, levels=levels)
    labelling = {"policy": str(Path(policy).resolve()), "levels": list(levels), "solutions": solutions,
                 "rollouts": rollouts, "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    labelled, engine, started = {}, None, time.perf_counter()
    for split, problems in (("train", train_problems), ("eval", eval_problems)):
        settings = {**labelling, "split": split, "problems": len(problems)}
        path = labels_dir / LABEL_FILES[split]
        labelled[split] = load_labels(path, settings)
        if labelled[split] is None:
            if engine is None:
                engine = make_engine(policy, max_model_len=512, seed=seed)
            labelled[split] = label_problems(policy, problems, solutions=solutions, rollouts=rollouts,
                                             max_tokens=max_tokens, temperature=temperature, seed=seed, engine=engine)
            save_labels(path, labelled[split], settings)
            log(f"labelled {len(labelled[split])} {split} solutions ({time.perf_counter() - started:.0f}s)")
    del engine
    tokenizer = load_tokenizer(policy)
    model = RewardModel.from_policy(policy, kind)
    losses = fit_reward_model(model, tokenizer, labelled["train"], kind=kind, label=label, epochs=epochs, lr=lr,
                              batch_size=batch_size, seed=seed, log=log)
    folder = save_reward_model(model, out / "model", tokenizer_dir=policy)

    scored = {}  # split -> scorer -> per-solution step scores
    gold = {}
    for split, problems in (("train", train_problems), ("eval", eval_problems)):
        by_id = {p.id: p for p in problems}
        solutions_ = labelled[split]
        gold[split] = [reference_step_correct(by_id[s.problem_id], s.steps) for s in solutions_]
        learned = score_steps(model, tokenizer, [(s.prompt, s.steps) for s in solutions_])
        checker = [step_checker_scores(s.prompt, s.steps) for s in solutions_]
        scored[split] = {"learned": learned, "step_checker": checker,
                         "combined": [combined_scores(a, b) for a, b in zip(learned, checker)]}
    quality = {name: rank_quality(scores, labelled["eval"], gold["eval"],
                                  best_threshold(scored["train"][name], gold["train"]))
               for name, scores in scored["eval"].items()}
    report = {"kind": kind, "label": label, "model": str(folder), "settings": {**labelling, "epochs": epochs,
              "lr": lr, "batch_size": batch_size, "num_problems": num_problems,
              "num_eval_problems": num_eval_problems},
              "labels": {split: label_statistics(solutions_) for split, solutions_ in labelled.items()},
              "loss_first": losses[0], "loss_last": sum(losses[-5:]) / len(losses[-5:]),
              "quality": quality,
              "seconds": time.perf_counter() - started}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    for name, q in report["quality"].items():
        log(f"{name}: step AUC {q['step_auc_gold']:.3f} (gold) / {q['step_auc_monte_carlo']:.3f} (Monte-Carlo), "
            f"outcome AUC {q['outcome_auc']:.3f}, first-error F1 {q['first_error_f1']:.3f} (threshold "
            f"{q['threshold']:.2f} from the training solutions; {q['first_error_f1_at_0.5']:.3f} at 0.5)")
    return report


def label_statistics(solutions: list) -> dict:
    steps = [label for s in solutions for label in s.soft]
    return {"solutions": len(solutions), "steps": len(steps),
            "correct_solutions": sum(s.correct for s in solutions) / max(len(solutions), 1),
            "mean_soft_label": sum(steps) / max(len(steps), 1)}

