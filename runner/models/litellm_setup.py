"""litellm, imported once and set up for offline use.

`import litellm` costs seconds, so only what calls or counts for a real model imports it,
through `litellm()`. Before the import the cost map is pinned to the local copy, and after
it tokenizer downloads, telemetry and debug lines are off: importing and counting never
reach the network.
"""

from __future__ import annotations

import os
from typing import Any

_litellm: Any = None


def litellm() -> Any:
    """Import litellm once, set up so that importing and counting never reach the network."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm as module

        module.suppress_debug_info = True
        module.disable_hf_tokenizer_download = True
        module.telemetry = False
        _litellm = module
    return _litellm
