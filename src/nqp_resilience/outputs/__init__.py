"""Outputs stage: LaTeX tables, figures, the replication check and the provenance map."""
