"""`mentor-pipeline mentor list|set-status`: what a coordinator does in the app, from a shell.

The status change goes through the same UPDATE the app issues, so the outbox trigger decides
what reaches the website; this command adds no rules of its own.
"""

from __future__ import annotations

from mentor_pipeline.db import connect

STATUSES = ["active", "paused", "expired_cert"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("mentor", help="list mentors or change a mentor's status (as the app would)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="mentors with status, certification expiry and listing wish")
    listing.add_argument("--org", help="organisation code, e.g. HLF")
    listing.set_defaults(func=_list)
    change = actions.add_parser("set-status", help="change a mentor's status, e.g. set-status 'Ingrid Hansen' paused")
    change.add_argument("mentor", help="mentor id or exact full name")
    change.add_argument("status", choices=STATUSES)
    change.add_argument("--as-coordinator", action="store_true",
                        help="mark the change as manual_coordinator_action instead of status_change")
    change.set_defaults(func=_set_status)


def _list(args) -> int:
    query = """
        select m.id, o.code, c.name, m.full_name, m.status, lc.expires_at::date
        from mentors m
        join organizations o on o.id = m.organization_id
        left join chapters c on c.id = m.chapter_id
        left join mentor_latest_certification lc on lc.mentor_id = m.id
        where %(org)s::text is null or o.code = %(org)s
        order by o.code, c.name, m.full_name
    """
    with connect() as conn:
        rows = conn.execute(query, {"org": args.org}).fetchall()
    print(f"{'id':36}  {'org':4} {'chapter':15} {'name':22} {'status':12} cert expires")
    for mentor_id, org, chapter, name, status, expires in rows:
        print(f"{mentor_id!s:36}  {org:4} {chapter or '-':15} {name:22} {status:12} {expires or 'none'}")
    return 0


def _set_status(args) -> int:
    with connect() as conn:
        matches = conn.execute(
            "select id, full_name, status from mentors where id::text = %s or full_name = %s", (args.mentor, args.mentor)
        ).fetchall()
        if not matches:
            raise ValueError(f"no mentor with id or name {args.mentor!r} (see: mentor-pipeline mentor list)")
        if len(matches) > 1:
            raise ValueError(f"{len(matches)} mentors are named {args.mentor!r}: use the id (see: mentor-pipeline mentor list)")
        mentor_id, name, old_status = matches[0]
        if args.as_coordinator:
            conn.execute("select set_config('mentor_pipeline.triggered_by_event', 'manual_coordinator_action', true)")
        conn.execute("update mentors set status = %s, updated_at = now() where id = %s", (args.status, mentor_id))
        queued = conn.execute(
            "select operation from sync_queue where mentor_id = %s and status = 'pending'", (mentor_id,)
        ).fetchone()
        warning = conn.execute(
            "select warning from mentor_status_audit where mentor_id = %s order by id desc limit 1", (mentor_id,)
        ).fetchone()
    print(f"{name}: {old_status} -> {args.status}")
    if old_status != args.status:
        print(f"website sync queued: {queued[0]}" if queued else "website sync: nothing queued")
        if warning and warning[0]:
            print(f"warning: {warning[0]}")
    return 0
