"""The test process's botocore sessions share their service models (tests.support.botocore_models), nothing else."""

from __future__ import annotations

from pathlib import Path

import boto3.session
import botocore.session


def test_sessions_share_one_loader_but_keep_their_own_state() -> None:
    one, two = botocore.session.get_session(), botocore.session.get_session()
    assert one.get_component("data_loader") is two.get_component("data_loader")
    one.set_config_variable("region", "eu-west-1")
    assert two.get_config_variable("region") != "eu-west-1"
    sqs = one.create_client("sqs", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert sqs.meta.region_name == "eu-west-1"


def test_a_session_with_another_data_path_gets_a_loader_of_its_own(tmp_path: Path) -> None:
    default = botocore.session.get_session()
    other = botocore.session.get_session()
    other.set_config_variable("data_path", str(tmp_path))
    loader = other.get_component("data_loader")
    assert loader is not default.get_component("data_loader")
    assert str(tmp_path) in loader.search_paths


def test_boto3_sessions_leave_the_shared_search_path_as_it_was() -> None:
    boto3.session.Session()
    paths = list(botocore.session.get_session().get_component("data_loader").search_paths)
    for _ in range(5):
        boto3.session.Session()
    assert botocore.session.get_session().get_component("data_loader").search_paths == paths
    assert len(paths) == len(set(paths))
    assert any(path.endswith("boto3/data") for path in paths)
