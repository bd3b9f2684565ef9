"""template.yaml as data: intrinsic functions, parameters, conditions, creation order."""

from __future__ import annotations

from typing import Any

import pytest

from local.template import Template, TemplateError


def make(resources: dict[str, Any], **extra: Any) -> Template:
    document = {
        "Parameters": {"Prefix": {"Type": "String", "Default": "cp", "AllowedPattern": "^[a-z]+$"}},
        "Resources": resources,
        **extra,
    }
    return Template(document, parameters={}, account_id="123456789012", region="eu-west-1", stack_name="cp")


def test_ref_sub_and_pseudo_parameters() -> None:
    t = make({"Q": {"Type": "AWS::SQS::Queue"}})
    t.attributes["Q"] = {"Ref": "https://q", "Arn": "arn:aws:sqs:eu-west-1:123456789012:cp-q"}
    assert t.resolve({"Ref": "Prefix"}) == "cp"
    assert t.resolve({"Fn::Sub": "${Prefix}-${AWS::AccountId}-${AWS::Region}"}) == "cp-123456789012-eu-west-1"
    assert t.resolve({"Fn::Sub": "${Q.Arn}/x"}) == "arn:aws:sqs:eu-west-1:123456789012:cp-q/x"
    assert t.resolve({"Fn::Sub": ["${A}-${Prefix}", {"A": {"Ref": "Q"}}]}) == "https://q-cp"
    assert t.resolve({"Fn::GetAtt": ["Q", "Arn"]}) == t.resolve({"Fn::GetAtt": "Q.Arn"})


def test_join_select_split() -> None:
    t = make({})
    assert t.resolve({"Fn::Join": ["-", ["a", {"Ref": "Prefix"}]]}) == "a-cp"
    assert t.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"


def test_conditions_if_and_no_value() -> None:
    t = make(
        {},
        Conditions={"IsCp": {"Fn::Equals": [{"Ref": "Prefix"}, "cp"]}, "NotCp": {"Fn::Not": [{"Condition": "IsCp"}]}},
    )
    assert t.resolve({"Fn::If": ["IsCp", "yes", "no"]}) == "yes"
    assert t.resolve({"Fn::If": ["NotCp", "yes", "no"]}) == "no"
    assert t.resolve({"A": 1, "B": {"Fn::If": ["NotCp", 2, {"Ref": "AWS::NoValue"}]}}) == {"A": 1}
    assert t.resolve([1, {"Ref": "AWS::NoValue"}, 2]) == [1, 2]


def test_resources_under_a_false_condition_are_not_created() -> None:
    t = make(
        {"A": {"Type": "X", "Condition": "Never"}, "B": {"Type": "X"}}, Conditions={"Never": {"Fn::Equals": ["a", "b"]}}
    )
    assert t.creation_order() == ["B"]


def test_creation_order_follows_references_and_depends_on() -> None:
    t = make(
        {
            "Bucket": {"Type": "X", "DependsOn": "Policy", "Properties": {"Q": {"Fn::GetAtt": ["Queue", "Arn"]}}},
            "Policy": {"Type": "X", "Properties": {"Queues": [{"Ref": "Queue"}]}},
            "Queue": {"Type": "X", "Properties": {"Dlq": {"Fn::Sub": "${Dead.Arn}"}}},
            "Dead": {"Type": "X"},
        }
    )
    order = t.creation_order()
    assert order.index("Dead") < order.index("Queue") < order.index("Policy") < order.index("Bucket")


def test_circular_dependencies_are_reported() -> None:
    t = make(
        {"A": {"Type": "X", "Properties": {"B": {"Ref": "B"}}}, "B": {"Type": "X", "Properties": {"A": {"Ref": "A"}}}}
    )
    with pytest.raises(TemplateError, match="circular"):
        t.creation_order()


def test_unsupported_intrinsics_are_errors_not_passed_through() -> None:
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        make({}).resolve({"Fn::ImportValue": "x"})


def test_unprovisioned_attribute_is_an_error() -> None:
    with pytest.raises(TemplateError, match="not available"):
        make({"Q": {"Type": "X"}}).resolve({"Fn::GetAtt": ["Q", "Arn"]})


def test_parameters_are_checked() -> None:
    document = {"Parameters": {"Prefix": {"Type": "String", "Default": "cp", "AllowedPattern": "^[a-z]+$"}}}
    with pytest.raises(TemplateError, match="AllowedPattern"):
        Template(document, parameters={"Prefix": "UPPER"}, account_id="1", region="r", stack_name="s")
    with pytest.raises(TemplateError, match="unknown parameters"):
        Template(document, parameters={"Nope": "x"}, account_id="1", region="r", stack_name="s")
