# One image for every Flotilla process: web (daphne), worker (qcluster), engine (runengine).
# syntax=docker/dockerfile:1
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.lock

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data HOST=0.0.0.0 PORT=8000 DJANGO_SETTINGS_MODULE=config.settings
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 flotilla \
 && useradd --system --uid 10001 --gid flotilla --home-dir /app --shell /usr/sbin/nologin flotilla \
 && mkdir -p /data /app && chown flotilla:flotilla /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=flotilla:flotilla . /app
# Static files are collected at build time so the web process serves them (whitenoise) read-only.
RUN DATA_DIR=/tmp/build-data SECRET_KEY=build FIELD_ENCRYPTION_KEY=$(python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())") \
    LOOKUP_HASH_KEY=build python manage.py collectstatic --noinput \
 && mv /tmp/build-data/static /app/staticfiles && rm -rf /tmp/build-data
ENV STATIC_ROOT=/app/staticfiles
USER flotilla
VOLUME ["/data"]
EXPOSE 8000 6881/tcp 6881/udp
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/healthz',timeout=4)" || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
# Default: the web process. Compose overrides the command for worker and engine.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python -m config.daphne -b $HOST -p $PORT --proxy-headers --access-log /dev/null config.asgi:application"]
