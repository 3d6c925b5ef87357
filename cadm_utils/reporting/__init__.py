"""The reporting layer: tables from the records, the paper's numbers, the stored analyses
behind the figures, and the plots."""
