"""Everything the emulator can be configured with at start (the CLI flags map onto this)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TENANT_ID = "8d3a2f4e-0000-4000-8000-00000000a11f"
DEFAULT_CLIENT_ID = "5b1e7c9a-0000-4000-8000-0000000c1e47"
DEFAULT_CLIENT_SECRET = "emulator-secret"


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    tenant_id: str = DEFAULT_TENANT_ID
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    seed_contacts: int = 0
    # Service protection limits, per user, as Microsoft documents the defaults.
    request_limit: int = 6000
    window_seconds: float = 300.0
    execution_time_limit: float = 1200.0
    concurrency_limit: int = 52
    token_lifetime: int = 3599
    max_page_size: int = 5000
    portal_delay: float = 0.0  # Power Pages shows API changes within 15 minutes
    # The contact table's Track changes setting (EntityMetadata.ChangeTrackingEnabled).
    change_tracking: bool = True
    state_file: str | None = None
    seed: int = 0  # random seed for fault injection, so demos repeat
