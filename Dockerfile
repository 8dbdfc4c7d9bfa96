# One image for every role of the service: `migrate`, `api` and `worker` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, in its own layer: PyPI's Linux wheel carries CUDA, so the same image trains on a GPU
# worker host and runs on CPU elsewhere.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md alembic.ini ./
COPY fusion fusion
COPY service service
COPY worker worker
COPY migrations migrations
# Editable, so that alembic.ini and migrations/ stay where the code finds them (/app); [engine] is the
# worker's set, which holds the API's ([server]) too.
RUN pip install -e '.[engine]'

# The artifact volume is mounted on /data/artifacts; creating it here gives a fresh volume this owner.
RUN useradd --create-home --uid 1000 fusebox && mkdir -p /data/artifacts && chown -R fusebox /data
USER fusebox
ENV FUSEBOX_VAR_DIR=/data FUSEBOX_ARTIFACT_ROOT=/data/artifacts

EXPOSE 8000 8001
CMD ["python", "-m", "service.serve", "--host", "0.0.0.0", "--port", "8000"]
