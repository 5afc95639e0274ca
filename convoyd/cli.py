"""`convoyd`: serve, migrate, check-config, backup."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from convoyd import __version__, logs, settings
from convoyd.errors import BackupError, ConvoydError

log = logging.getLogger("convoyd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convoyd", description="convoyd webhook delivery daemon")
    parser.add_argument("--version", action="version", version=f"convoyd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the daemon"),
        ("migrate", "apply database migrations and exit"),
        ("check-config", "validate the configuration and exit"),
        ("backup", "copy the database to FILE (safe while the daemon runs)"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument(
            "--config", type=Path, help="TOML file (default: /etc/convoyd/convoyd.toml if present)"
        )
        cmd.add_argument("--data-dir", help="overrides data_dir / CONVOYD_DATA_DIR")
        if name == "backup":
            cmd.add_argument("file", type=Path, help="where to write the copy")
            cmd.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
        elif name != "migrate":
            cmd.add_argument("--grpc-listen", help="overrides grpc_listen / CONVOYD_GRPC_LISTEN")
            cmd.add_argument("--http-listen", help="overrides http_listen / CONVOYD_HTTP_LISTEN")
            cmd.add_argument("--log-level", help="debug, info, warning or error")
    return parser


def _load(args: argparse.Namespace) -> settings.Settings:
    overrides: dict[str, Any] = {
        key: getattr(args, key, None)
        for key in ("data_dir", "grpc_listen", "http_listen", "log_level")
    }
    return settings.load(args.config, overrides=overrides)


def _run_loop(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _migrate(config: settings.Settings) -> None:
    from convoyd import datadir

    if config.store == "postgres":
        import time

        from convoyd.store.pg_connections import describe_dsn, migrate

        # Several nodes may run this at once: the migrations take an advisory lock.
        ran = await migrate(config.postgres, now=time.time())
        print(f"convoyd: {ran} migration(s) applied to {describe_dsn(config.postgres.dsn)}")
        return
    from convoyd.store.sqlite import DB_FILE, apply_migrations

    datadir.prepare(config.data_dir)
    # Not while a daemon (or another migrate) uses the directory.
    lock = datadir.DataDirLock(config.data_dir)
    lock.acquire()
    try:
        datadir.check_writable(config.data_dir)
        ran = await asyncio.to_thread(apply_migrations, config.data_dir / DB_FILE)
    finally:
        lock.release()
    print(f"convoyd: {ran} migration(s) applied to {config.data_dir / DB_FILE}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
        logs.configure(config.log_level, config.log_format)
        if args.command == "check-config":
            store = "sqlite"
            if config.store == "postgres":
                from convoyd.store.pg_connections import describe_dsn

                store = f"postgres {describe_dsn(config.postgres.dsn)}"
            print(
                f"convoyd: configuration OK (data_dir={config.data_dir}, store={store},"
                f" grpc={config.grpc_listen}, http={config.http_listen})"
            )
            return 0
        if args.command == "migrate":
            os.umask(0o077)
            _run_loop(_migrate(config))
            return 0
        if args.command == "backup":
            if config.store == "postgres":
                raise BackupError(
                    "backup copies the SQLite store; for PostgreSQL use pg_dump"
                    " (see docs/operations.md, Backups)"
                )
            from convoyd.store.backup import backup
            from convoyd.store.sqlite import DB_FILE

            os.umask(0o077)  # the copy holds signing secrets too
            size = backup(config.data_dir / DB_FILE, args.file, force=args.force)
            print(f"convoyd: backup written to {args.file} ({size} bytes)")
            return 0
        for name in logs.disable_native_traces():
            logging.getLogger("convoyd").warning(
                "%s ignored: gRPC's native traces would print tokens", name
            )
        from convoyd import gc_tuning
        from convoyd.app import App

        # The database holds signing secrets: nothing convoyd creates is for other users.
        os.umask(0o077)
        gc_tuning.tune()
        # SIGHUP re-reads the same file, environment and flags.
        _run_loop(App(config, reload_settings=lambda: _load(args)).run())
        return 0
    except ConvoydError as exc:
        print(f"convoyd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
