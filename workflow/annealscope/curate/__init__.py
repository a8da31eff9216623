"""The curate stage (workflow/rules/curate.smk): synthesize, filter or take a source; decontaminate; tokenize."""
