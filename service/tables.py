"""Every table: importing this module registers all ORM models on Base.metadata (for Alembic and tests)."""

from service.core.database import Base
from service.datasets.models import Dataset
from service.deployments.models import Deployment, FusedModel
from service.jobs.models import FusionJob, job_sources
from service.models.models import UploadedModel
from service.tenants.models import ApiKey, Tenant

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Dataset",
    "Deployment",
    "FusedModel",
    "FusionJob",
    "Tenant",
    "UploadedModel",
    "job_sources",
    "metadata",
]
