from __future__ import annotations

from airflow_provider_xcompliance.naming import MAX_JOB_NAME_LENGTH, job_name

RUN = "scheduled__2026-05-01T00:00:00+00:00"


def test_same_identity_gives_the_same_name():
    assert job_name("dag", "task", RUN, chunk=3) == job_name("dag", "task", RUN, chunk=3)


def test_name_starts_with_dag_and_task_ids():
    assert job_name("nightly_compliance", "run_tweets", RUN).startswith("nightly_compliance.run_tweets-")


def test_distinct_runs_get_distinct_names():
    assert job_name("dag", "task", RUN) != job_name("dag", "task", RUN.replace("05-01", "05-02"))


def test_distinct_chunks_get_distinct_names():
    assert job_name("dag", "task", RUN, chunk=0) != job_name("dag", "task", RUN, chunk=1)


def test_distinct_map_indexes_get_distinct_names():
    assert job_name("dag", "task", RUN, map_index=0) != job_name("dag", "task", RUN, map_index=1)


def test_chunk_index_stays_readable():
    assert ".c7-" in job_name("dag", "task", RUN, chunk=7)


def test_long_ids_are_cut_to_the_api_limit_keeping_the_hash():
    long_a = job_name("d" * 200, "t" * 200, RUN, chunk=12345)
    long_b = job_name("d" * 200, "t" * 200 + "x", RUN, chunk=12345)
    assert len(long_a) == MAX_JOB_NAME_LENGTH
    assert long_a != long_b
    assert ".c12345-" in long_a


def test_label_replaces_the_readable_prefix_but_not_the_identity():
    first = job_name("dag", "task", RUN, label="nightly")
    second = job_name("dag", "task", RUN.replace("05-01", "05-02"), label="nightly")
    assert first.startswith("nightly-")
    assert first != second


def test_unsafe_characters_are_replaced():
    assert job_name("dag", "task", RUN, label="my job/ünïcode").startswith("my_job_n_code-")
