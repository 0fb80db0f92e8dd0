# The agent's sandbox on GPU machines: CUDA PyTorch with transformers, peft, trl and vllm.
#
#   autorl-gym image build train          # or: docker build -f docker/train.Dockerfile -t autorl-gym/train docker
#   autorl-gym run --env AutoRL-GSM8K-v0 --sandbox docker --gpus device=0   # with, in the scenario,
#   sandbox: {image: autorl-gym/train:latest}   or   AUTORL_GYM_DOCKER_IMAGE=autorl-gym/train:latest
#
# The docker backend runs every command in a fresh container of this image as an unprivileged
# user, with a read-only root filesystem, HOME=/tmp/home on a private tmpfs, no network (the
# grading server comes in through a unix-socket bridge served by python3), and the GPUs of the
# run's device request. Nothing of autorl-gym is installed here: the agent never sees the grader.
ARG BASE=pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1

# vllm 0.8.5 pins torch 2.6.0, the base image's own: pip keeps it instead of pulling a second one.
RUN python -m pip install \
        "vllm==0.8.5" \
        "transformers>=4.51,<5" \
        "tokenizers>=0.21" \
        "safetensors>=0.4" \
        "accelerate>=1.0" \
        "datasets>=3.0" \
        "peft>=0.14" \
        "trl>=0.19" \
    && python -c "import torch, transformers, peft, trl, vllm; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# bash runs the commands and python3 the bridge forwarder; `python` is what agents type.
RUN command -v bash python3 && (command -v python || ln -s "$(command -v python3)" /usr/local/bin/python)

WORKDIR /tmp
