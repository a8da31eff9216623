"""The evaluate stage (workflow/rules/evaluate.smk): local tasks, lm-eval on every checkpoint, metrics.csv."""
