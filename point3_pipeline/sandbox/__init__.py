"""The point3 sandbox: a local HTTP server with point3's documented behaviour and demo data.

    with SandboxServer(SandboxConfig(seed=42)) as sb:
        httpx.get(sb.url + "/api/settlement", headers={"Authorization": f"Basic {sb.key}"})
        sb.state.clock.advance(300)       # tests move time instead of sleeping
        sb.state.set_faults(error_rate=0.2)

    with SandboxServer(cfg, merchants=3) as sb:   # one server, three merchants
        sb.keys, sb.states                        # each merchant's key and state, merchant 1 first
        sb.write_merchants(folder)                # merchants.toml + key and businesses files
"""

from point3_pipeline.sandbox.config import DEFAULT_KEY, SandboxConfig
from point3_pipeline.sandbox.faults import Faults
from point3_pipeline.sandbox.merchants import SandboxMerchants
from point3_pipeline.sandbox.server import SandboxServer
from point3_pipeline.sandbox.state import SandboxState

__all__ = ["DEFAULT_KEY", "Faults", "SandboxConfig", "SandboxMerchants", "SandboxServer", "SandboxState"]
