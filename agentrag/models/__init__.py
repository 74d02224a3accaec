"""Local model serving: set up vLLM in its own venv, prepare the default model, start/stop servers."""
