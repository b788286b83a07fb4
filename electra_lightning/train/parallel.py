"""How the model is parallelized, apart from what it is (cf. torchtitan's parallelize.py)."""

from __future__ import annotations

from datetime import timedelta

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` for pure data-parallel sharding (FSDP2) over every process.

    Plain ``ModelParallelStrategy(data_parallel_size="auto")`` shards over nodes only and treats
    the devices of a node as tensor-parallel; ELECTRA here is data parallel only, so the data
    parallel size is the world size (devices × num_nodes). Runs on GPUs and on CPU (gloo).
    """

    def __init__(
        self,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta = timedelta(minutes=30),
    ):
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def shard_electra(pair: nn.Module, mesh, bf16_params: bool = False) -> None:
    """``fully_shard`` every transformer layer of each network, then the root (``ElectraPair`` or
    ``MaskedLM``).

    The root's forward runs the whole ELECTRA step, so the shared embeddings and both heads are
    one unit; sharding the LightningModule instead would mix plain tensors and DTensors.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    names = mesh.mesh_dim_names or ()
    dp_mesh = mesh["data_parallel"] if "data_parallel" in names else mesh
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16_params
        else MixedPrecisionPolicy()
    )
    for net in pair.exports().values():  # generator and discriminator, or the MLM encoder
        for layer in net.electra.encoder.layer:
            fully_shard(layer, mesh=dp_mesh, mp_policy=policy)
    fully_shard(pair, mesh=dp_mesh, mp_policy=policy)
