"""IAM as AWS evaluates it, for the embedded AWS (the local stack and the IAM-enforced tests).

moto checks the Action and Resource of identity policies and ignores every ``Condition``, every resource policy
and most of STS. This package is the missing half, built on moto's own request authorisation:

- :mod:`local.iam.policy`: one policy document against one request (Action/NotAction, Resource/NotResource,
  Principal/NotPrincipal, Condition), and AWS's evaluation logic across identity and resource policies.
- :mod:`local.iam.conditions`: a Condition block evaluated; an unknown operator or key raises, never passes (the keys
  in :mod:`local.iam.condition_keys`, the operators in :mod:`local.iam.condition_operators`, ``${...}`` and
  wildcards in :mod:`local.iam.policy_variables`).
- :mod:`local.iam.sts`: AssumeRole and AssumeRoleWithWebIdentity as STS runs them (role, trust policy, durations,
  role chaining, the caller's credentials in :mod:`local.iam.sts_callers`, the web identity token in
  :mod:`local.iam.web_identity`, the issuers' keys from loopback only in :mod:`local.iam.jwks`).
- :mod:`local.iam.enforce`: moto's request authorisation patched to decide with the above (the decision in
  :mod:`local.iam.decision`; the request in :mod:`local.iam.call`, its resources in :mod:`local.iam.resources`, its
  condition context in :mod:`local.iam.context`, all read from the embedded AWS's state);
  :mod:`local.iam.authenticate`: what moto's signature check leaves out; :mod:`local.iam.presigned`: presigned S3
  links.
- :mod:`local.iam.principals`: a principal's identity policies (users, groups, roles, boundaries, session policies).
"""
