"""Data ablations: the same proxy model trained on each candidate's build, compared beyond seed noise."""
