"""The base stage (workflow/rules/base.smk): the demo's tokenizer and tiny Llama, built here."""
