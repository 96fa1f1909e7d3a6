"""The command line's live feed: ``listen`` (the MLLP listener) and ``listen-status`` (its health)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from cli.app import _config, _viewer, cli, output_format, store_options
from monitor.timestamps import is_timezone
from services.feed import FeedOptions, TeamNotFound, feed_state
from services.listener import ListenOptions, run
from services.store import open_store


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (an interface's).")
@click.option("--port", type=click.IntRange(0, 65535), default=2575, show_default=True, help="TCP port.")
@click.option(
    "--timezone",
    default=None,
    metavar="TZ",
    help="IANA zone for HL7 times without an offset in a message whose MSH-7 has none either (default: the "
    "site's zone, MONITOR_TIMEZONE).",
)
@click.option(
    "--team",
    "teams",
    multiple=True,
    metavar="CODE",
    help="Put every patient the feed names in this care team (repeatable; the team must exist).",
)
@click.option(
    "--processing-id",
    "processing_ids",
    multiple=True,
    default=("P",),
    show_default=True,
    metavar="ID",
    help="MSH-11 processing IDs taken (P production, T training, D debugging; repeatable): any other is "
    "refused (AR), so that an engine's test channel never writes into patients' results.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve MLLP over TLS with this certificate chain (PEM); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The private key (PEM) of --tls-cert.",
)
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Take only engines presenting a client certificate this CA (PEM) signed; needs --tls-cert.",
)
@store_options
def listen(
    database: str | None,
    host: str,
    port: int,
    timezone: str | None,
    teams: tuple[str, ...],
    processing_ids: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
) -> None:
    """Receive HL7 v2 ORU^R01 results live over MLLP, as an interface engine delivers them.

    Each message is answered once what it carries is committed to the store: AA when every record is
    stored, AE when some or all were refused (kept with their reasons, as a file import keeps them; ERR
    segments name them), AR when it was not processed (not an ORU^R01, unreadable, no control ID, or the
    store unavailable): send it again. A message sent again with the same control ID and content is
    answered as before and stored once. Patients' statuses are recomputed within seconds, in passes.

    Listens on loopback unless --host names an interface. Stops cleanly on SIGTERM or Ctrl-C: the
    messages received are stored and answered first. One log line per message on stderr: control ID,
    ACK code and counts, never a patient's data. See docs/deployment.md (systemd unit, TLS).

    \b
    Examples:
      python -m monitor listen
      python -m monitor listen --host 10.0.4.12 --port 2575 --team ONC --tls-cert lis.pem --tls-key lis.key
    """
    if timezone is not None and not is_timezone(timezone):
        raise click.BadParameter(f"{timezone!r} is not an IANA time zone (e.g. Europe/London)")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("TLS needs both --tls-cert and --tls-key")
    if tls_client_ca is not None and tls_cert is None:
        raise click.UsageError("--tls-client-ca needs TLS: --tls-cert and --tls-key")
    config = _config(database)
    store = open_store(config)
    options = ListenOptions(
        host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca
    )
    feed = FeedOptions(
        address=options.address,
        site_timezone=config.timezone,
        timezone=timezone,
        teams=teams,
        future_tolerance=config.future_tolerance,
        processing_ids=tuple(processing_ids),
    )
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run(store, feed, options)
    except TeamNotFound as error:
        raise click.BadParameter(str(error), param_hint="--team") from None
    except OSError as error:
        raise click.UsageError(f"cannot listen on {options.address}: {error.strerror or error}") from None


@cli.command("listen-status")
@output_format("table", "json")
@store_options
def listen_status(database: str | None, fmt: str) -> None:
    """The live feed's health: each listener (listening, stopped, or silent: not seen for 30 s), the
    messages received since the site's midnight by ACK code, and the patients whose status is still to
    be recomputed. Exit status 0 when a listener is listening, 1 when none is (for a monitoring check).

    \b
    Examples:
      python -m monitor listen-status
      python -m monitor listen-status --format json
    """
    config = _config(database)
    store = open_store(config)
    state = feed_state(store, viewer=_viewer(store, None), now=datetime.now(UTC), timezone=config.timezone)
    counts = {
        str(code): int(n) for code, n in zip(state.today["ack_code"], state.today["messages"], strict=True)
    }
    if fmt == "json":
        # What the table says, as one object for a monitoring system.
        listeners = state.listeners[
            ["address", "state", "pid", "host_name", "started_at", "seen_at", "stopped_at"]
        ]
        health = {
            "healthy": bool(state.healthy),
            "listeners": json.loads(listeners.to_json(orient="records", date_format="iso", date_unit="s")),
            "today": {code: counts.get(code, 0) for code in ("AA", "AE", "AR")},
            "last_message_at": f"{state.last_at:%Y-%m-%dT%H:%M:%SZ}" if state.last_at else None,
            "statuses_waiting": int(state.waiting),
        }
        click.echo(json.dumps(health, indent=1, ensure_ascii=False))
    else:
        if state.listeners.empty:
            click.echo("no listener has run on this store")
        for row in state.listeners.itertuples():
            click.echo(
                f"{row.address}: {row.state} (pid {row.pid} on {row.host_name}, "
                f"last seen {row.seen_at:%Y-%m-%d %H:%M:%S} UTC)"
            )
        click.echo(
            "today: "
            + ", ".join(f"{counts.get(code, 0):,} {code}" for code in ("AA", "AE", "AR"))
            + (f"; last message {state.last_at:%Y-%m-%d %H:%M:%S} UTC" if state.last_at else "; no message")
        )
        click.echo(f"statuses waiting to be recomputed: {state.waiting:,}")
    sys.exit(0 if state.healthy else 1)
