"""The experiment layer: profiles planned into cells, the product store (experts, synthetic
sets) and the records, workers and launchers, and the time-budgeted run."""
