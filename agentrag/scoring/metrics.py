"""Evaluation metrics: ranking (nDCG@k, Recall@k, MRR, MAP) and short-answer QA (EM, F1, containment).

Ranking metrics go through ``pytrec_eval`` (the ``pytrec-eval-terrier`` distribution): Python
bindings to trec_eval itself, the program whose numbers IR papers and BEIR report, so our
figures are comparable by construction. It was picked over the alternatives because it is the
reference implementation (not a re-implementation), ships binary wheels, imports in
milliseconds and has no dependencies; ``ranx`` pulls in pandas, seaborn, ir-datasets and numba
and spends ~40 s JIT-compiling on first use, and ``ir-measures`` is a wrapper around
``pytrec_eval`` for our purposes.

trec_eval conventions apply: a document is relevant when its label is >= 1; nDCG uses the
graded labels as linear gains (rel / log2(rank + 1)); ties in the run's scores are broken by
document id (descending), so give strictly decreasing scores (:func:`run_from_rankings`) when
order matters. Means are taken over every query in the qrels: a query the run does not answer
scores 0 (trec_eval ``-c``).

QA metrics follow the SQuAD evaluation script's normalisation (lower-case, drop punctuation,
articles a/an/the, and extra whitespace); each is the maximum over the gold answers.

Example:
    >>> from agentrag.scoring.metrics import ir_metrics, exact_match, f1_score
    >>> qrels = {"q1": {"d1": 1, "d3": 1}}
    >>> run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}}
    >>> round(ir_metrics(qrels, run, ["ndcg@10", "mrr"])["ndcg@10"], 4)
    0.9197
    >>> exact_match("The Eiffel Tower", ["eiffel tower"]), round(f1_score("Eiffel", ["Eiffel Tower"]), 3)
    (1.0, 0.667)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "IR_MEASURES",
    "answer_contains",
    "exact_match",
    "f1_score",
    "ir_metrics",
    "ir_metrics_per_query",
    "normalize_answer",
    "qa_scores",
    "run_from_rankings",
]

Qrels = Mapping[str, Mapping[str, int]]
"""query id -> {doc id: graded relevance (>= 1 relevant)}."""

Run = Mapping[str, Mapping[str, float]]
"""query id -> {doc id: score (higher = better)}."""

IR_MEASURES = ("ndcg@k", "recall@k", "precision@k", "mrr", "map")
"""Measure names understood by :func:`ir_metrics` (``k`` is any positive integer)."""

_NAME = re.compile(r"^(ndcg|recall|precision)@(\d+)$")


def _trec_name(name: str) -> tuple[str, str]:
    """Our measure name -> (pytrec_eval measure to request, key of its result)."""
    if name == "mrr":
        return "recip_rank", "recip_rank"
    if name == "map":
        return "map", "map"
    if name == "ndcg":
        return "ndcg", "ndcg"
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"unknown measure {name!r}; use one of {IR_MEASURES}")
    kind, k = m.group(1), int(m.group(2))
    if k < 1:
        raise ValueError(f"{name}: k must be >= 1")
    base = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P"}[kind]
    return f"{base}.{k}", f"{base}_{k}"


def ir_metrics_per_query(
    qrels: Qrels, run: Run, measures: Sequence[str] = ("ndcg@10",)
) -> dict[str, dict[str, float]]:
    """Per-query values: ``{query id: {measure: value}}`` for every query in ``qrels``.

    Queries without any relevant document are skipped (the measures are undefined for them,
    and trec_eval skips them too); queries the run does not answer score 0.
    """
    import pytrec_eval

    names = {m: _trec_name(m) for m in measures}
    judged = {
        q: {d: int(r) for d, r in docs.items()}
        for q, docs in qrels.items()
        if any(int(r) >= 1 for r in docs.values())
    }
    if not judged:
        return {}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {req for req, _ in names.values()})
    # pytrec_eval wants float scores and str ids; an empty ranking is like a missing one.
    clean_run = {
        q: {str(d): float(s) for d, s in docs.items()} for q, docs in run.items() if q in judged and docs
    }
    raw = evaluator.evaluate(clean_run)
    out: dict[str, dict[str, float]] = {}
    for q in judged:
        row = raw.get(q, {})
        out[q] = {m: float(row.get(key, 0.0)) for m, (_, key) in names.items()}
    return out


def ir_metrics(qrels: Qrels, run: Run, measures: Sequence[str] = ("ndcg@10",)) -> dict[str, float]:
    """Means over the judged queries: ``{measure: value}``.

    Args:
        qrels: Gold labels.
        run: Scores per query.
        measures: Names like ``ndcg@10``, ``recall@100``, ``precision@5``, ``mrr``, ``map``.
    """
    per_query = ir_metrics_per_query(qrels, run, measures)
    if not per_query:
        return dict.fromkeys(measures, 0.0)
    return {m: sum(row[m] for row in per_query.values()) / len(per_query) for m in measures}


def run_from_rankings(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """A run from ordered doc-id lists (score = −rank, so trec_eval keeps the given order).

    A document repeated in a ranking keeps its first (best) position.
    """
    out: dict[str, dict[str, float]] = {}
    for q, docs in rankings.items():
        row: dict[str, float] = {}
        for rank, d in enumerate(docs):
            row.setdefault(d, -float(rank))
        out[q] = row
    return out


# ---------------------------------------------------------------- short-answer QA

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(gold: str | Iterable[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def exact_match(prediction: str, gold: str | Iterable[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _golds(gold)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # SQuAD: both empty is a match, one empty is not.
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, gold: str | Iterable[str]) -> float:
    """Token-overlap F1 after normalisation, best over the gold answers."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(g).split()) for g in _golds(gold)), default=0.0)


def answer_contains(prediction: str, gold: str | Iterable[str]) -> float:
    """1.0 if a normalised gold answer occurs in the normalised prediction as whole tokens.

    Lenient on verbose answers ("It was Paris, in 1889" contains "1889"); token boundaries
    keep "10" from matching inside "100".
    """
    pred = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in pred for g in _golds(gold)))


def qa_scores(prediction: str, gold: str | Iterable[str]) -> dict[str, float]:
    """``{"em", "f1", "contains"}`` for one prediction."""
    return {
        "em": exact_match(prediction, gold),
        "f1": f1_score(prediction, gold),
        "contains": answer_contains(prediction, gold),
    }
