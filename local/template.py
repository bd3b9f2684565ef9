"""template.yaml as data: load it (CloudFormation tags and all) and resolve intrinsic functions.

The local stack provisions from this, so the template stays the one source of truth for infrastructure.
Supported intrinsics: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If (with
Conditions built from Fn::Equals/Not/And/Or). Anything else is an error, never silently passed through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_WAIVERS", "PSEUDO_PARAMETERS", "Template", "TemplateError", "load_template"]

PSEUDO_PARAMETERS = (
    "AWS::AccountId",
    "AWS::Region",
    "AWS::Partition",
    "AWS::StackName",
    "AWS::URLSuffix",
    "AWS::NoValue",
)
_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")

# The one AllowedPattern the local stack waives, for the values it accepts instead, and why. It serves the
# API itself over http on loopback and passes that URL as the issuer; template.yaml accepts https only, as
# relying parties on AWS need. Every waiver used becomes a provisioning note.
LOCAL_WAIVERS: dict[str, tuple[str, str]] = {
    "Issuer": (r"http://(127\.0\.0\.1|localhost)(:[0-9]+)?", "an http loopback issuer (AWS stacks take https only)"),
}


class TemplateError(Exception):
    pass


def load_template(path: Path) -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    document: dict[str, Any] = _plain(cfn_yaml.load(str(path)))
    return document


def _plain(value: Any) -> Any:
    """cfn-lint's decoder returns str/dict subclasses that carry line marks; make them plain."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class Template:
    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
        account_id: str,
        region: str,
        stack_name: str,
    ) -> None:
        self.document = document
        self.resources: dict[str, dict[str, Any]] = dict(document.get("Resources", {}))
        self._pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.waived: list[str] = []  # parameters accepted by a LOCAL_WAIVERS pattern, not their own
        self.parameters = self._parameter_values(parameters)
        self.attributes: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": …, "Arn": …}
        self._conditions: dict[str, bool] = {}

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, str]:
        declared = self.document.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {sorted(unknown)}")
        values = {}
        for name, spec in declared.items():
            given = overrides.get(name, spec.get("Default"))
            if given is None:  # as CloudFormation: "Parameters: [X] must have values"
                raise TemplateError(f"parameter {name} has no value and no Default")
            value = str(given)
            pattern = spec.get("AllowedPattern")
            if pattern and not re.fullmatch(pattern, value):
                waiver = LOCAL_WAIVERS.get(name)
                if waiver is None or not re.fullmatch(waiver[0], value):
                    raise TemplateError(f"parameter {name}={value!r} does not match its AllowedPattern")
                self.waived.append(f"parameter {name}={value}: {waiver[1]}, accepted against its AllowedPattern")
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.document.get("Conditions", {}).get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._evaluate_condition(spec))
        return self._conditions[name]

    def _evaluate_condition(self, spec: Any) -> bool:
        ((fn, args),) = spec.items()
        if fn == "Fn::Equals":
            return bool(self.resolve(args[0]) == self.resolve(args[1]))
        if fn == "Fn::Not":
            return not self._evaluate_condition(args[0])
        if fn == "Fn::And":
            return all(self._evaluate_condition(a) for a in args)
        if fn == "Fn::Or":
            return any(self._evaluate_condition(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        if fn == "Fn::Contains":  # Rules only: is the value one of the list's
            return bool(self.resolve(args[1]) in self.resolve(args[0]))
        raise TemplateError(f"unsupported condition function {fn}")

    def rule_failures(self) -> list[str]:
        """What CloudFormation refuses before it touches a resource: each failed assertion's AssertDescription.

        Rule functions (CloudFormation User Guide, "Rules" and "Rule functions"): Fn::And/Or/Not/Equals/Contains
        and Ref; a rule without RuleCondition always applies.
        """
        failures = []
        for name, rule in self.document.get("Rules", {}).items():
            if "RuleCondition" in rule and not self._evaluate_condition(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions", []):
                if not self._evaluate_condition(assertion["Assert"]):
                    failures.append(f"{name}: {assertion.get('AssertDescription', 'assertion failed')}")
        return failures

    def included(self, logical_id: str) -> bool:
        name = self.resources[logical_id].get("Condition")
        return True if name is None else self.condition(name)

    def dependencies(self, logical_id: str) -> set[str]:
        """Resources this one refers to (Ref, GetAtt, Sub, DependsOn), in creation order terms."""
        resource = self.resources[logical_id]
        found: set[str] = set()
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        _walk_references(resource.get("Properties", {}), found)
        return {name for name in found if name in self.resources}

    def creation_order(self) -> list[str]:
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise TemplateError(f"circular dependency at {name}")
            visiting.add(name)
            for dependency in sorted(self.dependencies(name)):
                visit(dependency)
            visiting.discard(name)
            order.append(name)

        for name in self.resources:
            visit(name)
        return [name for name in order if self.included(name)]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, args),) = value.items()
            handler = self._INTRINSICS.get(key)
            if handler is not None:
                return handler(self, args)
            if key.startswith("Fn::"):
                raise TemplateError(f"unsupported intrinsic function {key}")
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._attribute(name, "Ref")

    def _attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            raise TemplateError(f"{logical_id}.{attribute} is not available (not provisioned yet?)") from None

    def _get_att(self, args: Any) -> str:
        logical_id, attribute = args.split(".", 1) if isinstance(args, str) else args
        return self._attribute(logical_id, attribute)

    def _sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else (args[0], self.resolve(args[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return self._get_att(name)
            return str(self._ref(name))

        return _SUB_RE.sub(replace, text)

    def _join(self, args: Any) -> str:
        separator, items = args
        return str(separator).join(str(i) for i in self.resolve(items))

    def _select(self, args: Any) -> Any:
        index, items = args
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, args: Any) -> list[str]:
        separator, text = args
        return str(self.resolve(text)).split(separator)

    def _if(self, args: Any) -> Any:
        name, when_true, when_false = args
        return self.resolve(when_true if self.condition(name) else when_false)

    _INTRINSICS: dict[str, Callable[[Template, Any], Any]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::If": _if,
    }


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()


def _walk_references(value: Any, found: set[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk_references(item, found)
    elif isinstance(value, dict):
        for key, args in value.items():
            if key == "Ref" and isinstance(args, str):
                found.add(args)
            elif key == "Fn::GetAtt":
                found.add(args.split(".", 1)[0] if isinstance(args, str) else args[0])
            elif key == "Fn::Sub":
                text = args if isinstance(args, str) else args[0]
                found.update(m.split(".", 1)[0] for m in _SUB_RE.findall(text))
                if not isinstance(args, str):
                    _walk_references(args[1], found)
            else:
                _walk_references(args, found)
