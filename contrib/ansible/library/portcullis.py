#!/usr/bin/python
# Ansible module for Portcullis: applies a policy on the managed host, with check mode (plan),
# diff mode (the plan's diff) and a confirmation deadline that a later task must meet.
from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: portcullis
short_description: Apply a Portcullis container-host firewall policy
description:
  - Compiles a Portcullis policy and applies it to the host's kernel with C(portcullis apply),
    atomically and as a generation that C(portcullis rollback) undoes.
  - Check mode runs C(portcullis plan) and reports what would change; diff mode shows the
    plan's rules and set elements added and removed.
  - With I(confirm), the new ruleset is rolled back after that many seconds unless a later
    task confirms it (I(state=confirmed)): if the new rules cut Ansible's own connection, that
    task never arrives and the host gets its previous rules back.
options:
  policy:
    description: The policy file on the managed host (needed for I(state=applied)).
    type: path
  state:
    description:
      - C(applied) applies the policy; C(confirmed) confirms a generation applied with
        I(confirm); C(rolled_back) undoes the latest generation.
    type: str
    choices: [applied, confirmed, rolled_back]
    default: applied
  layout:
    description: The layout (C(docker-20.10), C(docker-28), C(docker-29), C(native), ...).
    type: str
  backend:
    description: C(iptables), C(nftables) or C(nftables-json).
    type: str
  confirm:
    description: Seconds within which a later C(state=confirmed) task must confirm.
    type: int
  prune:
    description: Allow removing the rules of bridges and containers the policy leaves out.
    type: bool
    default: false
  take_over:
    description: Replace owned tables that hold rules Portcullis did not write.
    type: bool
    default: false
  state_dir:
    description: Portcullis' state directory.
    type: path
    default: /var/lib/portcullis
  binary:
    description: The portcullis executable.
    type: path
    default: portcullis
"""

EXAMPLES = r"""
- name: Apply the host policy, to be confirmed within 60 s
  portcullis:
    policy: /etc/portcullis/host.policy
    confirm: 60
- name: Still reachable, so keep it
  portcullis:
    state: confirmed
"""


def run(module, arguments):
    rc, out, err = module.run_command([module.params["binary"]] + arguments)
    return rc, out, err.strip()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            policy=dict(type="path"),
            state=dict(type="str", choices=["applied", "confirmed", "rolled_back"], default="applied"),
            layout=dict(type="str"),
            backend=dict(type="str"),
            confirm=dict(type="int"),
            prune=dict(type="bool", default=False),
            take_over=dict(type="bool", default=False),
            state_dir=dict(type="path", default="/var/lib/portcullis"),
            binary=dict(type="path", default="portcullis"),
        ),
        required_if=[("state", "applied", ["policy"])],
        supports_check_mode=True,
    )
    p = module.params
    state = ["--state-dir", p["state_dir"]]

    if p["state"] in ("confirmed", "rolled_back"):
        command = "confirm" if p["state"] == "confirmed" else "rollback"
        if module.check_mode:
            module.exit_json(changed=False, msg="check mode: %s not run" % command)
        rc, out, err = run(module, [command] + state)
        if rc == 2:
            module.fail_json(msg=err or out)
        # Exit 1: nothing waiting, or nothing to roll back.
        module.exit_json(changed=rc == 0, msg=(out or err).strip())

    options = list(state)
    for name in ("layout", "backend"):
        if p[name]:
            options += ["--" + name, p[name]]
    if p["prune"]:
        options.append("--prune")
    if p["take_over"]:
        options.append("--take-over")

    # The plan decides changed/ok, and is the diff.
    rc, out, err = run(module, ["plan", p["policy"], "--format", "json"] + options)
    if rc == 2:
        module.fail_json(msg=err or "portcullis plan failed", plan=out)
    plan = json.loads(out)
    changed = rc == 1
    result = dict(changed=changed, plan=plan)
    if module._diff and changed:
        _, text, _ = run(module, ["plan", p["policy"]] + options)
        result["diff"] = dict(prepared=text)
    if module.check_mode or not changed:
        module.exit_json(**result)

    apply = ["apply", p["policy"]] + options
    if p["confirm"]:
        apply += ["--confirm", str(p["confirm"]), "--no-wait"]
    rc, out, err = run(module, apply)
    if rc != 0:
        module.fail_json(msg=err or out, **result)
    result["msg"] = out.strip()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
