"""The anneal stage (workflow/rules/anneal.smk; also the base stage's pre-training): the training job, its
DeepSpeed launch and every rank's loop."""
