"""The reconciliation diff: pure functions of rows, no I/O.

The app side comes from `reconciliation_app_state()` (which reads the one rule,
`mentor_website_desired_state`); the Dynamics side from the client's `iter_listings` pages.
Both are keyed on the mentor id (text, as Dataverse stores the alternate key).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from mentor_pipeline.vocabulary import Classification

# What a reconciliation can find, in the order reports list them (force sync logs `forced`).
CLASSIFICATIONS = tuple(c for c in Classification if c != Classification.FORCED)
DIVERGENT = tuple(c for c in CLASSIFICATIONS if c != Classification.IN_SYNC)

# Actions: queue a write (add/remove), leave the mentor to the row already queued, or nothing.
ADD, REMOVE, LEFT_TO_QUEUE, NONE = "add", "remove", "left_to_queue", "none"

APP_COLUMNS = ["mentor_id", "status", "should_be_listed", "chapter_name", "confirmed_listed", "in_queue",
               "confirmed_matches"]


def app_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    """Rows of `reconciliation_app_state()` (mentor_id as text) as a frame."""
    frame = pd.DataFrame.from_records(list(rows), columns=APP_COLUMNS)
    frame["mentor_id"] = frame["mentor_id"].astype(object)  # also when there are no mentors yet
    frame["should_be_listed"] = frame["should_be_listed"].astype(bool)
    frame["in_queue"] = frame["in_queue"].astype(bool)
    frame["status"] = frame["status"].astype("category")
    return frame


def actual_frame(pages: Iterable[list[dict]], *, on_page=None) -> pd.DataFrame:
    """Fold listing pages into one lean frame (mentor_id, listed, chapter), one page in memory
    at a time. `on_page(rows_so_far)` is called after each page (the CLI's progress bar)."""
    ids: list[str] = []
    listed: list[bool] = []
    chapters: list[str | None] = []
    for page in pages:
        for row in page:
            ids.append(str(row["mentor_id"]))
            listed.append(bool(row.get("listed")))  # null in Dynamics: the portal does not show it
            chapters.append(row.get("chapter"))
        if on_page is not None:
            on_page(len(ids))
    # Dtypes named, not inferred: an empty Dynamics (a new deployment) would make the key float64.
    frame = pd.DataFrame({"mentor_id": pd.Series(ids, dtype=object), "listed": np.array(listed, dtype=bool),
                          "chapter": pd.Series(chapters, dtype="category")})
    # The alternate key is unique in Dataverse; should two contacts ever share it, one listed
    # copy is enough for the portal to show the mentor.
    if frame["mentor_id"].duplicated().any():
        frame = frame.sort_values("listed", ascending=False).drop_duplicates("mentor_id")
    return frame


def diff_listings(app: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Classify every mentor of `app` against `actual`, and choose the action.

    Returns one row per app mentor with `contact_exists`, `dynamics_listed` (False when absent),
    `classification` and `action`:
    - listed_but_should_not -> remove; missing_but_should -> add;
    - chapter_differs: listed as it should be, under another chapter than the app's -> add
      (a listing write carries the chapter);
    - contact_absent: add when the mentor should be listed (the write fails as "no contact",
      which reports it); nothing when they should not be (the website does not show them);
    - a mentor with a pending or in-flight queue row is left to that row;
    - in_sync -> nothing.
    """
    merged = app.merge(actual.rename(columns={"listed": "dynamics_listed", "chapter": "dynamics_chapter"}),
                       on="mentor_id", how="left", indicator="_found")
    exists = (merged["_found"] == "both").to_numpy()
    dynamics_listed = merged["dynamics_listed"].fillna(False).to_numpy(dtype=bool)
    should = merged["should_be_listed"].to_numpy(dtype=bool)
    app_chapter = merged["chapter_name"].astype(object)
    other_chapter = (app_chapter.notna() & (app_chapter != merged["dynamics_chapter"].astype(object))).to_numpy()
    classification = np.select(
        [~exists, dynamics_listed & ~should, ~dynamics_listed & should, should & other_chapter],
        [Classification.CONTACT_ABSENT, Classification.LISTED_BUT_SHOULD_NOT, Classification.MISSING_BUT_SHOULD,
         Classification.CHAPTER_DIFFERS],
        default=Classification.IN_SYNC,
    )
    in_queue = merged["in_queue"].to_numpy(dtype=bool)
    wants_write = ((classification != Classification.IN_SYNC)
                   & ((classification != Classification.CONTACT_ABSENT) | should))
    action = np.select(
        [~wants_write, in_queue, should],
        [NONE, LEFT_TO_QUEUE, ADD],
        default=REMOVE,
    )
    result = merged.drop(columns=["_found", "dynamics_chapter"])
    result["contact_exists"] = exists
    result["dynamics_listed"] = dynamics_listed
    result["classification"] = pd.Categorical(classification, categories=CLASSIFICATIONS)
    result["action"] = pd.Categorical(action, categories=[ADD, REMOVE, LEFT_TO_QUEUE, NONE])
    return result


def unknown_contacts(app: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Contacts in Dynamics with no mentor of a syncing organisation in the app. The listed ones
    are unlisted (`orphan_rows`); the pipeline never deletes or creates contacts."""
    return actual[~actual["mentor_id"].isin(app["mentor_id"])]


def orphan_rows(listed_unknown: pd.DataFrame, desired: pd.DataFrame) -> pd.DataFrame:
    """Listed contacts whose mentor is gone from the app or has no website sync, in the shape of
    `diff_listings`' rows, each to be unlisted (or left to a queued row). `desired` is the
    rule's answer for their keys: mentor_id, in_app, status, in_queue."""
    rows = listed_unknown[["mentor_id"]].merge(desired, on="mentor_id", how="left")
    in_app = rows["in_app"].fillna(False).to_numpy(dtype=bool)
    in_queue = rows["in_queue"].fillna(False).to_numpy(dtype=bool)
    return pd.DataFrame({
        "mentor_id": rows["mentor_id"],
        "status": rows["status"].astype(object),
        "should_be_listed": False,
        "chapter_name": None,
        "confirmed_listed": None,
        "in_queue": in_queue,
        "confirmed_matches": None,
        "contact_exists": True,
        "dynamics_listed": True,
        "classification": pd.Categorical(
            np.where(in_app, Classification.LISTED_WITHOUT_SYNC, Classification.LISTED_MENTOR_GONE),
            categories=CLASSIFICATIONS),
        "action": pd.Categorical(np.where(in_queue, LEFT_TO_QUEUE, REMOVE), categories=[ADD, REMOVE, LEFT_TO_QUEUE, NONE]),
    })


def counts(diff: pd.DataFrame) -> dict[str, int]:
    """Mentors per classification and per action (every key present, zeros included)."""
    by_class = diff["classification"].value_counts()
    by_action = diff["action"].value_counts()
    result = {name.value: int(by_class.get(name, 0)) for name in CLASSIFICATIONS}  # plain keys: JSON, Dagster metadata
    result.update({f"action_{name}": int(by_action.get(name, 0)) for name in (ADD, REMOVE, LEFT_TO_QUEUE, NONE)})
    result["checked"] = int(len(diff))
    result["divergent"] = int(len(diff)) - result[Classification.IN_SYNC]
    return result


def divergent_rows(diff: pd.DataFrame) -> pd.DataFrame:
    return diff[diff["classification"] != Classification.IN_SYNC]


def dynamics_state(row_exists: bool, listed: bool) -> str:
    return "absent" if not row_exists else ("listed" if listed else "unlisted")


def iter_dynamics_states(diff: pd.DataFrame) -> Iterator[str]:
    for exists, listed in zip(diff["contact_exists"], diff["dynamics_listed"]):
        yield dynamics_state(bool(exists), bool(listed))
