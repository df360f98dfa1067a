import PortcullisIR

/// Differences between what a policy compiles to and what a host holds, chain by chain:
/// rules missing, rules that should not be there, and the same rules in another order (which
/// can change a verdict, since the first match decides).
public struct DriftAudit: Sendable {
    public let expected: Ruleset
    public let actual: Ruleset
    /// Renders a rule for comparison and display (`-A CHAIN ...`).
    public let text: @Sendable (Rule, String, TableFamily) -> String

    public init(expected: Ruleset, actual: Ruleset, text: @escaping @Sendable (Rule, String, TableFamily) -> String) {
        self.expected = expected
        self.actual = actual
        self.text = text
    }

    public func findings() -> [Finding] {
        var findings: [Finding] = []
        for table in expected.tables {
            let live = actual.table(table.family, table.name)
            for chain in table.chains {
                guard let liveChain = live?.chain(chain.name) else {
                    findings.append(
                        Finding(
                            id: "chain-missing", severity: .high, table: table.name, chain: chain.name, rule: nil,
                            explanation: "the chain the policy needs is not on the host",
                            fix: "apply the policy (portcullis apply)"))
                    continue
                }
                if let base = chain.base, let liveBase = liveChain.base, base.policy != liveBase.policy {
                    findings.append(
                        Finding(
                            id: "policy-differs", severity: .high, table: table.name, chain: chain.name, rule: nil,
                            explanation:
                                "the chain's policy is \(liveBase.policy.rawValue), the policy wants \(base.policy.rawValue)",
                            fix: "apply the policy (portcullis apply)"))
                }
                let wanted = chain.rules.map { text($0, chain.name, table.family) }
                let present = liveChain.rules.map { text($0, chain.name, table.family) }
                for (rule, line) in zip(chain.rules, wanted) where !present.contains(line) {
                    findings.append(
                        Finding(
                            id: "missing-rule", severity: .high, table: table.name, chain: chain.name, rule: rule,
                            explanation: "the policy needs this rule and the host does not have it",
                            fix: "apply the policy (portcullis apply)"))
                }
                for (rule, line) in zip(liveChain.rules, present) where !wanted.contains(line) {
                    findings.append(
                        Finding(
                            id: "unexpected-rule", severity: .medium, table: table.name, chain: chain.name, rule: rule,
                            explanation: "the host has this rule and the policy does not say it",
                            fix: "remove it, or describe it in the policy"))
                }
                let common = Set(wanted).intersection(present)
                if wanted.filter(common.contains) != present.filter(common.contains) {
                    findings.append(
                        Finding(
                            id: "rule-order", severity: .high, table: table.name, chain: chain.name, rule: nil,
                            explanation:
                                "the rules are there but in another order; the first match decides, so verdicts can differ",
                            fix: "apply the policy (portcullis apply)"))
                }
            }
        }
        return findings
    }
}
