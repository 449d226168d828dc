# dlsuite: the main job (every app end to end on embedded data) in a container.
#   docker build -t dlsuite . && docker run --rm -v $PWD/runs:/app/runs dlsuite
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY apps apps
COPY shared shared
COPY pipelines pipelines
COPY scripts scripts
# The same set-up script the README and CI use.
RUN bash scripts/setup.sh && rm -rf /root/.cache/pip /var/lib/apt/lists/*
# The translation corpus from pinned Debian packages (the same on every machine).
RUN bash scripts/fetch_gettext.sh de && rm -rf data_cache/translation/debs
ENV PATH=/app/.venv/bin:$PATH
CMD ["dlsuite", "all"]
