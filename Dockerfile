# The kubeflowlite operator image: `kubeflowlite operator` (kopf inside).
# Build: docker build -t kubeflowlite/kubeflowlite:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY kubeflowlite ./kubeflowlite
RUN python -m venv /opt/kubeflowlite \
    && /opt/kubeflowlite/bin/pip install . \
    && find /opt/kubeflowlite -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="kubeflowlite" \
      org.opencontainers.image.description="Airflow-style workflow orchestration native to Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kubeflowlite/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Graphviz lays out the web UI's graph view (`kubeflowlite ui`, the chart's ui.enabled).
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kubeflowlite /opt/kubeflowlite
# Non-root, with a numeric uid so that `runAsNonRoot` can verify it.
RUN groupadd --gid 10001 kubeflowlite \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kubeflowlite
USER 10001:10001
# kopf's liveness endpoint and the Prometheus metrics (see helm/kubeflowlite/values.yaml).
EXPOSE 8080 9090
ENTRYPOINT ["kubeflowlite", "operator"]
