"""The report stage (workflow/rules/report.smk): one HTML page of a fit."""
