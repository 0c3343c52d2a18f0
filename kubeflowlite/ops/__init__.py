"""Operations artefacts generated from code (the Grafana dashboard); not imported by the operator."""
