"""`mentor-pipeline mentor list|set-status`: what a coordinator does in the app, from a shell.

The status change goes through the same UPDATE the app issues, so the outbox trigger decides
what reaches the website; this command adds no rules of its own.
"""

from __future__ import annotations

from mentor_pipeline.db import connect
from mentor_pipeline.sync.store import move_status_changes
from mentor_pipeline.text import plain
from mentor_pipeline.vocabulary import TriggerEvent


def register(subparsers) -> None:
    parser = subparsers.add_parser("mentor", help="list mentors or change a mentor's status (as the app would)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="mentors with status, certification expiry, what the website should show "
                                               "(and why not) and what Dynamics last confirmed")
    listing.add_argument("--org", help="organisation code, e.g. HLF")
    listing.set_defaults(func=_list)
    change = actions.add_parser("set-status", help="change a mentor's status, e.g. set-status 'Ingrid Hansen' paused")
    change.add_argument("mentor", help="mentor id or exact full name")
    change.add_argument("status", help="active, paused or expired_cert (the app's check constraint decides)")
    change.add_argument("--as-coordinator", action="store_true",
                        help="mark the change as manual_coordinator_action instead of status_change")
    change.set_defaults(func=_set_status)


def _list(args) -> int:
    # The rule's answer (website_listing_rule) next to the last confirmed write: nothing restated.
    query = """
        select r.mentor_id, r.organization_code, r.chapter_name, r.full_name, r.status,
               oslo_date(r.certification_expires_at)::text, r.should_be_listed, r.reason, w.listed,
               to_char(w.last_synced_at, 'YYYY-MM-DD HH24:MI TZ')
        from mentor_website_desired_state r
        left join website_listing_state w on w.mentor_id = r.mentor_id
        where %(org)s::text is null or r.organization_code = %(org)s
        order by r.organization_code, r.chapter_name, r.full_name
    """
    with connect() as conn:
        rows = conn.execute(query, {"org": args.org}).fetchall()
        if args.org is not None and not rows:
            known = [code for (code,) in conn.execute("select code from organizations order by code")]
            if args.org not in known:
                raise ValueError(f"no organisation with code {plain(args.org)!r}: known codes are "
                                 f"{', '.join(map(plain, known)) or 'none (run mentor-pipeline db seed?)'}")
    print(f"{'id':36}  {'org':4} {'chapter':15} {'name':22} {'status':12} {'cert expires':12} "
          f"{'website should show':40} Dynamics confirmed")
    for mentor_id, org, chapter, name, status, expires, listed, reason, confirmed, synced_at in rows:
        wish = "listed" if listed else f"not listed: {reason}"
        seen = "-" if confirmed is None else f"{'listed' if confirmed else 'not listed'} at {synced_at}"
        print(f"{mentor_id!s:36}  {plain(org):4} {plain(chapter or '-'):15} {plain(name):22} {status:12} "
              f"{expires or 'none':12} {wish:40} {seen}")
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
            conn.execute("select set_config('mentor_pipeline.triggered_by_event', %s, true)",
                         (TriggerEvent.MANUAL_COORDINATOR_ACTION,))
        conn.execute("update mentors set status = %s, updated_at = now() where id = %s", (args.status, mentor_id))
        # The change is in the inbox; move it as the tick would (after any move in progress), so
        # the queue row and the audit row (with any warning) it becomes can be read back here.
        move_status_changes(conn, wait=True)
        queued = conn.execute(
            "select operation from sync_queue where mentor_id = %s and status = 'pending' order by id desc limit 1",
            (mentor_id,),
        ).fetchone()
        warning = conn.execute(
            "select warning from mentor_status_audit where mentor_id = %s order by id desc limit 1", (mentor_id,)
        ).fetchone()
    print(f"{plain(name)}: {old_status} -> {args.status}")
    if old_status != args.status:
        print(f"website sync queued: {queued[0]}" if queued else "website sync: nothing queued")
        if warning and warning[0]:
            print(f"warning: {warning[0]}")
    return 0
