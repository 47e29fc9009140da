"""VMINet (the subject) and the timm references; rival architectures live in the top-level ``baselines``."""
