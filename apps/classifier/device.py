"""Where the classifier runs: the GPU Ray assigned to the replica, else the CPU, said once.

A replica of a GPU deployment gets GPU ids from Ray. On a real node CUDA then sees the
device; on a rehearsal's logical GPU node (or a node whose driver is missing) it does not,
and the same model and checkpoint code runs on the CPU instead of failing.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger("ray.serve")


def inference_device(assigned_gpu_ids: list[str] | list[int]) -> torch.device:
    """cuda when Ray assigned GPUs and CUDA sees one; otherwise cpu, logged once per replica."""
    if assigned_gpu_ids and torch.cuda.is_available():
        return torch.device("cuda")
    if assigned_gpu_ids:
        logger.warning("Ray assigned GPU(s) %s but CUDA sees no device (a logical GPU, as in "
                       "`servestack rehearse`, or no driver): running on CPU",
                       list(assigned_gpu_ids))
    return torch.device("cpu")
