"""The fit stage (workflow/rules/fit.smk): curves per source, decisions, crossovers, allocation, figures,
and the planner of the next cells (`annealscope suggest`)."""
