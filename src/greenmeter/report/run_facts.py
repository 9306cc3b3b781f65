"""Facts about where and how a run happened: hosts, GPUs, software, git, ranks, models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from greenmeter.report.base import Name, NonNegFloat, NonNegInt, Status, UtcDatetime, _Model

__all__ = ["GitInfo", "GpuInfo", "HostInfo", "ModelInfo", "RankInfo", "SoftwareInfo"]


class HostInfo(_Model):
    """One machine of the run."""

    hostname: Name
    os: str | None = Field(None, description="Operating system family, e.g. 'Linux'.")
    os_release: str | None = Field(None, description="Distribution, e.g. 'Ubuntu 22.04.4 LTS'.")
    kernel: str | None = None
    cpu_model: str | None = None
    sockets: NonNegInt | None = None
    physical_cores: NonNegInt | None = None
    logical_cores: NonNegInt | None = None
    ram_bytes: NonNegInt | None = None
    ranks: list[NonNegInt] = Field(default_factory=list, description="Ranks run on this host.")


class GpuInfo(_Model):
    """One GPU board measured, from its component's details."""

    uuid: str
    component: str = Field(description="Key of the component measuring it.")
    host: Name
    vendor: Literal["nvidia", "amd"] | None = Field(
        None, description="Who made it: 'nvidia' (read through NVML) or 'amd' (AMD SMI)."
    )
    name: str | None = None
    index: NonNegInt | None = None
    driver_version: str | None = None
    architecture: str | None = None
    pci_bus_id: str | None = None
    power_limit_w: NonNegFloat | None = None
    mig: bool = Field(False, description="A MIG slice: the reading is its parent board's.")
    parent_uuid: str | None = None
    compute_partition: str | None = Field(
        None,
        description="AMD compute partition mode of the board (SPX, DPX, QPX, CPX); the "
        "reading is the whole board's, however many partitions the run used.",
    )
    partitions: NonNegInt | None = Field(
        None, description="Logical GPUs the board is split into (AMD compute partitions)."
    )
    shared: bool = Field(False, description="Other work may draw on the same board.")


class SoftwareInfo(_Model):
    """Versions of the software involved (None where not installed)."""

    python: str
    greenmeter: str
    torch: str | None = None
    cuda: str | None = Field(None, description="CUDA version torch was built with.")
    lightning: str | None = None
    pytorch_lightning: str | None = None
    transformers: str | None = None
    nvidia_ml_py: str | None = None
    amdsmi: str | None = Field(None, description="The amdsmi package (AMD SMI's binding).")
    pydantic: str | None = None
    frameworks_imported: list[str] | None = Field(
        None,
        description="ML frameworks (torch, lightning, pytorch_lightning, transformers) the "
        "process that built the report had imported; None where not recorded.",
    )


class GitInfo(_Model):
    """The working directory's git state when the run started."""

    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
    dirty: bool = Field(description="Tracked files had uncommitted changes.")
    branch: str | None = None


class RankInfo(_Model):
    """One process (rank) that contributed to the report."""

    rank: NonNegInt
    local_rank: NonNegInt
    world_size: Annotated[int, Field(ge=1)]
    host: Name
    status: Status
    start_utc: UtcDatetime
    end_utc: UtcDatetime
    duration_s: NonNegFloat
    components: list[str] = Field(
        default_factory=list, description="Keys of the components this rank measured."
    )
    it_energy_j: NonNegFloat = Field(
        description="What this rank measured, before any de-duplication across ranks."
    )


class ModelInfo(_Model):
    """Facts about a model whose efficiency the report documents."""

    name: str | None = None
    parameters_total: NonNegInt | None = None
    parameters_trainable: NonNegInt | None = None
    size_bytes: NonNegInt | None = Field(None, description="Parameters and buffers, in bytes.")
    dtypes: dict[str, NonNegInt] = Field(
        default_factory=dict, description="Parameter count per dtype, e.g. {'float16': 7e9}."
    )

    @model_validator(mode="after")
    def _check(self) -> ModelInfo:
        if (
            self.parameters_total is not None
            and self.parameters_trainable is not None
            and self.parameters_trainable > self.parameters_total
        ):
            raise ValueError("parameters_trainable exceeds parameters_total")
        return self
