# The dockercise bot: the web app (gunicorn) or a worker, with git and the docker CLI-free SDK.
# It talks to the host's engine through a mounted socket (or DOCKER_HOST):
#   docker run -v /var/run/docker.sock:/var/run/docker.sock \
#              -v /tmp/dockercise:/tmp/dockercise -e TMPDIR=/tmp/dockercise ... dockercise
# Stage volumes are bind mounts of the bot's temp directory, so that directory must be the
# same path on the host and in this container (the second -v above).
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runner runner
COPY webhooks webhooks
COPY bot bot
COPY pages pages
COPY cli cli
RUN pip install --no-cache-dir .
ENV DOCKERCISE_DATA_DIR=/data PORT=8080
VOLUME /data
EXPOSE 8080
CMD gunicorn --bind 0.0.0.0:${PORT} --workers 2 'bot.web:create_bot_app()'
