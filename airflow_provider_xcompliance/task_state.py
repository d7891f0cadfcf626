"""The current state of a task instance, read where a kill is handled: in the worker or in the triggerer.

Both read it through the Task SDK (the supervisor relays it to the Execution API), never the metadata
database directly, so the same call works in a worker, in a triggerer and on any executor.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_xcompliance.version_compat import call_supervisor


def _state_key(task_id: str, map_index: int | None) -> str:
    # The Execution API keys a mapped task's state as "<task_id>_<map_index>".
    return task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"


def task_state(ti: Any) -> str | None:
    """The state of ``ti`` (anything with ``dag_id``, ``task_id``, ``run_id``, ``map_index``) right now.

    Raises ``LookupError`` when the API does not know the task instance.
    """
    get_task_states = getattr(ti, "get_task_states", None)
    if get_task_states is None:  # the triggerer may hand a trigger a plain task instance record
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        get_task_states = RuntimeTaskInstance.get_task_states
    states = get_task_states(
        dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
    )
    key = _state_key(ti.task_id, ti.map_index)
    try:
        state = states[ti.run_id][key]
    except KeyError:
        raise LookupError(f"No task instance {ti.dag_id}.{key} in run {ti.run_id}") from None
    return None if state is None else str(state)


async def atask_state(ti: Any) -> str | None:
    """:func:`task_state` for the event loop: the request runs in a thread, so the loop never waits on it."""
    return await call_supervisor(task_state, ti)
