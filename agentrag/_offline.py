"""Switch off outbound calls that fail on an offline machine and slow everything down.

Applied when ``agentrag`` is imported, before any heavy library is. Values already set by the
user win (``setdefault``), so ``HF_HUB_OFFLINE=0`` still lets a user download on purpose.
"""

from __future__ import annotations

import os

_DEFAULTS = {
    # litellm fetches a model cost map from GitHub at import unless told to use its local copy.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Chroma phones home (posthog) unless telemetry is off.
    "ANONYMIZED_TELEMETRY": "False",
    # Models are loaded from local paths only; never let a library reach for the hub.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply() -> None:
    """Set the offline defaults in ``os.environ`` (idempotent)."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
