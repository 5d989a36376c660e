"""`replay serve`: the app under uvicorn."""

from __future__ import annotations

from replay.progress import note
from replay.serve.config import ServeConfig, check_bind


def run(config: ServeConfig, host: str, port: int) -> None:
    """Serve `config.data` on host:port until interrupted."""
    check_bind(host, config.token)
    import uvicorn

    from replay.serve.app import create_app

    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    note(f"serving {config.data} on http://{shown}:{port}/ "
         f"({'writes need the token' if config.token else 'no token: loopback only'})")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
