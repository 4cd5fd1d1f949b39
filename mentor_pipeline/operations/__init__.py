"""Operations: incidents (open once, counted, reminded, resolved), the alert sink that posts them,
the Dynamics credential check, and what the Dagster UI shows operators about the pipeline itself."""
