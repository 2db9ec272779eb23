"""Japan Talk: a small Starlette travel blog used as the consent-gate demo site."""
