# The grader on GPU machines: lm-eval with vllm, and autorl-gym itself.
#
#   autorl-gym image build eval           # or, from the repository: docker build -f docker/eval.Dockerfile -t autorl-gym/eval .
#   docker run --rm --gpus device=1 -v $PWD/workspace:/work/workspace:ro -v ~/.cache/autorl_gym:/root/.cache/autorl_gym \
#       autorl-gym/eval eval /work/workspace/<run>/output/v1 --env AutoRL-GSM8K-v0 --split test --backend lm_eval
#
# Keep the grader's GPUs apart from the agent's: give the agent's sandbox `--gpus device=0` and
# this container `--gpus device=1` (or, on the host, CUDA_VISIBLE_DEVICES=1).
ARG BASE=pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

# vllm 0.8.5 pins torch 2.6.0, the base image's own.
RUN python -m pip install "vllm==0.8.5" "lm-eval[vllm]>=0.4.13,<0.5"

COPY pyproject.toml README.md /src/
COPY autorl_gym /src/autorl_gym
RUN python -m pip install "/src[gpu]" \
    && python -c "import autorl_gym, lm_eval, vllm; print('autorl-gym', autorl_gym.__file__)"

ENTRYPOINT ["autorl-gym"]
CMD ["--help"]
