"""`mentor-pipeline incidents`: open incidents (age, count); `incidents resolve KIND` closes one by
hand (one "resolved" post), for incidents no automatic check clears, e.g. `sync_dead_rows`."""

from __future__ import annotations

from datetime import datetime, timezone

from mentor_pipeline.cli import CommandError


def register(subparsers) -> None:
    parser = subparsers.add_parser("incidents", help="list open incidents, or resolve one by hand")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(func=_list)
    resolve = actions.add_parser("resolve", help="mark an incident resolved (posts one 'resolved' to the webhook)")
    resolve.add_argument("kind", help="the incident kind, e.g. sync_dead_rows, or kind:scope (run_failed:website_sync_job)")
    resolve.add_argument("--note", default="resolved by hand", help="what was done (goes into the post)")
    resolve.set_defaults(func=_resolve)


def _list(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.operations.assets import incidents_table
    from mentor_pipeline.operations.store import open_incidents

    with connect(autocommit=True) as conn:
        incidents = open_incidents(conn)
    print(incidents_table(incidents, datetime.now(timezone.utc)))
    return 0


def _resolve(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.operations.alerts import alert_sink_from_env
    from mentor_pipeline.operations.store import get_incident

    kind, _, scope = args.kind.partition(":")
    with connect(autocommit=True) as conn:
        incident = get_incident(conn, kind, scope)
    if incident is None or incident.state == "resolved":
        raise CommandError(f"no open incident {args.kind}: `mentor-pipeline incidents` lists the open ones")
    if not alert_sink_from_env().resolve(kind, args.note, scope=scope):
        raise CommandError(f"incident {args.kind} could not be resolved (see the log line above)")
    print(f"resolved {incident.key} (open since {incident.first_seen:%Y-%m-%d %H:%M %Z}, {incident.occurrences} occurrence(s))")
    return 0
