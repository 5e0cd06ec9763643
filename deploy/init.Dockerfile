# The image of docker-compose.yml's one-shot `init` job: the ArtStore client (SDK) and deploy/compose_init.py,
# which registers the storage elements and provides the ingester's and query module's system accounts.
# Build it from the repository root:  docker build -f deploy/init.Dockerfile -t artstore-init .

FROM python:3.11-slim AS build
# The pins cover the build backend too (pip applies PIP_CONSTRAINT inside its isolated builds).
ENV PIP_CONSTRAINT=/src/constraints.txt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY constraints.txt ./
RUN python -m venv /opt/artstore && /opt/artstore/bin/pip install -c constraints.txt pip
COPY common ./common
COPY client ./client
RUN /opt/artstore/bin/pip install -c constraints.txt ./common ./client

FROM python:3.11-slim
ENV PATH=/opt/artstore/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The accounts directory exists in the image, owned by the service user, so that the named volume mounted
# there starts with that owner and the files written into it can be read by the ingester and query module,
# which run as the same uid.
RUN groupadd --gid 10001 artstore \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/artstore --no-create-home \
        --shell /usr/sbin/nologin artstore \
    && install -d -o artstore -g artstore -m 0750 /var/lib/artstore /var/lib/artstore/accounts
COPY --from=build /opt/artstore /opt/artstore
COPY deploy/compose_init.py /opt/artstore-init/compose_init.py
USER 10001:10001
WORKDIR /var/lib/artstore
# A job, not a server: it runs once and exits.
HEALTHCHECK NONE
CMD ["python", "/opt/artstore-init/compose_init.py", "--help"]
