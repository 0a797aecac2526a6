# One image for every threadline service: `docker run IMAGE serve store` (see deploy/compose.yaml).
#
# Two stages: the first installs the locked dependencies and the project into /app/.venv with uv;
# the second is the same base image with only that venv, so neither uv nor the build cache ships.
# Both stages must use the same base: the venv's interpreter is a link to its /usr/local/bin/python.

FROM python:3.11-slim AS build

# Pinned so `--frozen` reads uv.lock with the uv that wrote it.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --root-user-action=ignore "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /src

# Dependencies alone first: this layer is rebuilt only when the lock changes, not on every edit.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself, as a regular (not editable) install so the venv stands on its own.
# README.md is needed because pyproject.toml names it as the package's readme.
COPY README.md ./
COPY threadline ./threadline
COPY services ./services
COPY cli ./cli
RUN uv sync --frozen --no-dev --no-editable


FROM python:3.11-slim

# MALLOC_MMAP_THRESHOLD_: large batch buffers go back to the OS when freed (see
# threadline/supervisor.py, which sets the same for `threadline up`).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_MMAP_THRESHOLD_=131072

# /data belongs to the service user so that a named volume mounted there (created empty, then
# seeded from the image) is writable by the store.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/threadline \
        --shell /usr/sbin/nologin threadline \
    && mkdir /data \
    && chown threadline:threadline /data

COPY --from=build /app/.venv /app/.venv

USER threadline
WORKDIR /home/threadline

# Exec form: threadline is PID 1's child under `init: true`, or PID 1 itself, and gets SIGTERM.
ENTRYPOINT ["threadline"]
CMD ["--help"]
