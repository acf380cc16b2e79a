# gqlchannels: a GraphQL server for Strawberry schemas.
#
#   docker build -t gqlchannels .
#   docker run -p 8000:8000 gqlchannels                      # the example chat schema
#   docker run -p 8000:8000 -v "$PWD:/app" -e GQLCHANNELS_APP=myapp.schema:schema gqlchannels
#
# Every setting is a GQLCHANNELS_* environment variable (config/gqlchannels.env.example).

# A current Python: Django 6 needs 3.12 or newer.
ARG PYTHON_VERSION=3.13

# Build stage: wheels for gqlchannels and everything it needs; compilers, if any dependency
# needed one, stay here.
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md _gqlchannels_pytest_plugin.py ./
COPY gqlchannels ./gqlchannels
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: the wheels installed offline into a slim image, run as an unprivileged user.
FROM python:${PYTHON_VERSION}-slim
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels gqlchannels && rm -rf /wheels
RUN useradd --system --uid 10001 --no-create-home gqlchannels
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GQLCHANNELS_HOST=0.0.0.0 \
    GQLCHANNELS_PORT=8000 \
    GQLCHANNELS_APP=gqlchannels.examples.chat:schema \
    GQLCHANNELS_APP_DIR=/app
WORKDIR /app
USER 10001
EXPOSE 8000
# The slim image has no curl: ask /healthz with Python itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GQLCHANNELS_PORT', '8000'), timeout=2)"]
# Exec form: gqlchannels runs as PID 1 with no shell in between, so SIGTERM reaches it
# and it shuts down gracefully (WebSockets closed with 1001, requests finished, exit 0).
ENTRYPOINT ["gqlchannels", "serve"]
