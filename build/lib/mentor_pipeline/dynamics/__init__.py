"""Dynamics 365 (Dataverse) Web API client: token, listing reads, update-only writes, $batch."""

from mentor_pipeline.dynamics.client import DataverseClient
from mentor_pipeline.dynamics.results import ClientStats, ListingUpdate, UpdateOutcome, UpdateResult
from mentor_pipeline.dynamics.settings import DynamicsSettings

__all__ = [
    "ClientStats",
    "DataverseClient",
    "DynamicsSettings",
    "ListingUpdate",
    "UpdateOutcome",
    "UpdateResult",
]
