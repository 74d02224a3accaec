"""Scoring: UDCG for retrieved context, IR and QA metrics, an LLM judge, and score calibration."""

from agentrag.scoring.calibration import Calibration, brier_score, expected_calibration_error
from agentrag.scoring.judge import CorrectnessJudgement, LLMJudge, RelevanceJudgement
from agentrag.scoring.metrics import (
    answer_contains,
    exact_match,
    f1_score,
    ir_metrics,
    ir_metrics_per_query,
    normalize_answer,
    qa_scores,
    run_from_rankings,
)
from agentrag.scoring.udcg import UtilityScorer, expected_weight, udcg, uniform_discount

__all__ = [
    "Calibration",
    "CorrectnessJudgement",
    "LLMJudge",
    "RelevanceJudgement",
    "UtilityScorer",
    "answer_contains",
    "brier_score",
    "exact_match",
    "expected_calibration_error",
    "expected_weight",
    "f1_score",
    "ir_metrics",
    "ir_metrics_per_query",
    "normalize_answer",
    "qa_scores",
    "run_from_rankings",
    "udcg",
    "uniform_discount",
]
