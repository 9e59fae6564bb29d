# seekd container image: NVIDIA's CUDA 13 devel image builds, the runtime image runs.
#
#   docker build -t seekd .
#   docker run --gpus all -p 8000:8000 -v /srv/DeepSeek-V3:/models:ro seekd
#   docker stop -t 60 CONTAINER        # longer than shutdown_timeout (30s): a clean drain
#
# The build runs the same make targets as `make test` and `make install`; the model is mounted
# read-only at /models and the configuration lives in /etc/seekd (mount your own seekd.yaml
# there; the API keys come from SEEKD_API_KEY or that file). Open MPI is in the image, so the
# same image runs the ranks of a multi-node job (mpirun ... seekd serve; see the README).
ARG CUDA_VERSION=13.0.2
ARG UBUNTU=ubuntu24.04

# ---- build ---------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
# The base image fixes the distribution release, which fixes these packages' versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libmicrohttpd-dev libjansson-dev libyaml-dev libpcre2-dev xxd \
        check openmpi-bin libopenmpi-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# seekd with the CUDA backend (sm_90a: Hopper). The unit tests are Check programs: the CUDA
# build's, as `make test` runs them (the builder has no GPU; nothing in them needs one).
RUN make -j"$(nproc)" CUDA=1 seekd \
 && make -j"$(nproc)" cuda-unit \
 && make install CUDA=1 DESTDIR=/out PREFIX=/usr \
 && sed -i -e 's|^model: ""|model: /models|' -e 's|^host: 127.0.0.1|host: 0.0.0.0|' \
        /out/etc/seekd/seekd.yaml

# ---- run -----------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12t64 libjansson4 libyaml-0-2 libpcre2-8-0 curl ca-certificates \
        libopenmpi3t64 openmpi-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 seekd \
 && useradd --system --uid 10001 --gid seekd --home-dir /var/lib/seekd --shell /usr/sbin/nologin seekd
COPY --from=build /out/usr/bin/seekd /usr/bin/seekd
COPY --from=build /out/etc/seekd/seekd.yaml /etc/seekd/seekd.yaml
USER 10001:10001
EXPOSE 8000
VOLUME ["/models"]
STOPSIGNAL SIGTERM
# /health is 200 only once the model is loaded and warmed up and while the engine makes progress.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:8000/health || exit 1"]
ENTRYPOINT ["seekd", "serve"]
CMD ["--config", "/etc/seekd/seekd.yaml"]
