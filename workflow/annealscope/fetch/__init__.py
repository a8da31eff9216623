"""The fetch stage (workflow/rules/fetch.smk): hub datasets, models and lm-eval task data cached for offline jobs."""
