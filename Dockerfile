# The tripwire image: every component (`tripwire process | sink | migrate | topics | dashboard |
# simulate | killswitch ...`) is this image with a different command (see docker-compose.yml).
# Build: docker build -t tripwire:0.1.0 .
# Python matches the interpreter the test suite runs on.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# a compiler only for the rare dependency without a wheel for this platform; not in the final image
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# the package: pyproject maps the top-level pipeline folders onto the tripwire namespace
COPY pyproject.toml README.md ./
COPY tripwire ./tripwire
COPY schemas ./schemas
COPY killswitch ./killswitch
COPY redaction ./redaction
COPY producers ./producers
COPY processors ./processors
COPY sinks ./sinks
COPY notify ./notify
COPY dashboard ./dashboard
RUN pip install ".[all]" && tripwire --help > /dev/null

FROM python:3.11.7-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
# non-root; /data (state, spool, simulator output) and /keys (kill-switch keys) are volume mount
# points owned by this user, so named volumes start out writable by it
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tripwire \
 && mkdir -p /data /keys \
 && chown tripwire:tripwire /data /keys
USER tripwire
WORKDIR /data
ENTRYPOINT ["tripwire"]
CMD ["--help"]
