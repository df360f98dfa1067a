import JanssonKit
import PortcullisAudit
import PortcullisIR
import PortcullisRender

/// What `audit` is asked: risks on any host, or drift from a policy when one is given.
public struct AuditRequest: Sendable {
    public var policy: String?
    public var capture: HostCapture
    /// With `.live`: read the host through this backend's firewall (default: the policy's, else iptables).
    public var backend: String?
    /// The layout to compare with (default: the policy's, else docker-20.10).
    public var layout: String?
    /// The host the policy is bound to, when it leaves addresses and publishes to it.
    public var inventory: InventorySource?
    /// Drift only for the part Portcullis owns beside the Docker daemon (`DOCKER-USER`, or the
    /// `portcullis-user` tables), plus the risks of the whole ruleset.
    public var alongsideDocker: Bool

    public init(
        policy: String? = nil, capture: HostCapture, backend: String? = nil, layout: String? = nil,
        inventory: InventorySource? = nil, alongsideDocker: Bool = false
    ) {
        self.policy = policy
        self.capture = capture
        self.backend = backend
        self.layout = layout
        self.inventory = inventory
        self.alongsideDocker = alongsideDocker
    }
}

/// What an audit found on a host, most severe first, and the report of it (schema in docs/audit.md).
public struct AuditReport: Sendable {
    public let findings: [Finding]
    public let host: CapturedHost
    /// Drift from a policy, or risks.
    public let isDrift: Bool
    /// What the policy compiles to, for spelling its rules (empty for risks).
    let expected: Ruleset

    public var status: RunStatus { findings.isEmpty ? .clean : .findings }

    public func rendered(_ format: ReportFormat) -> String {
        switch format {
        case .json: json().rendered(indent: 2) + "\n"
        case .text: text()
        }
    }

    /// A rule of a finding, as the host's firewall prints it; `expected` rules are spelled
    /// with the policy's sets.
    func spell(_ rule: Rule, _ finding: Finding, expected: Bool) -> String {
        let family = finding.family ?? .ip
        let ruleset = expected ? self.expected : host.ruleset
        let table = Table(
            family: family, name: finding.table, sets: ruleset.table(family, finding.table)?.sets ?? [])
        return RuleSpeller(firewall: host.firewall).text(rule, chain: finding.chain, family: family, table: table)
            ?? "(a rule \(host.firewall == .iptables ? "iptables" : "nft") cannot spell)"
    }

    /// The finding's own rule: what the host has, or for a missing rule what the policy wants.
    func ownRule(_ rule: Rule, _ finding: Finding) -> String {
        spell(rule, finding, expected: finding.id == .missingRule)
    }

    static func location(_ provenance: Provenance?) -> String? {
        guard let provenance, let file = provenance.file else { return nil }
        if let line = provenance.line { return "\(file):\(line)" }
        return "\(file) \(provenance.statement)"
    }

    func json() -> JSON {
        JSON.object([
            ("schema", .string("portcullis-audit/1")), ("source", .string(host.source)),
            ("mode", .string(isDrift ? "drift" : "risks")), ("findings", .array(findings.map(json))),
        ])
    }

    func json(_ finding: Finding) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(finding.id.rawValue)), ("severity", .string(finding.severity.rawValue)),
            ("table", .string(finding.table)), ("chain", .string(finding.chain)),
        ]
        if let family = finding.family { members.append(("family", .string(family.rawValue))) }
        func add(_ key: String, _ locationKey: String, _ rule: Rule?, _ text: (Rule) -> String) {
            guard let rule else { return }
            members.append((key, .string(text(rule))))
            if let location = Self.location(rule.provenance) { members.append((locationKey, .string(location))) }
        }
        add("rule", "location", finding.rule) { ownRule($0, finding) }
        add("policy_rule", "policy_location", finding.expectedRule) { spell($0, finding, expected: true) }
        add("other_rule", "other_location", finding.otherRule) { spell($0, finding, expected: true) }
        if let subject = finding.subject { members.append(("subject", .string(subject))) }
        if let origin = Self.location(finding.policyOrigin) { members.append(("policy_location", .string(origin))) }
        members += [("explanation", .string(finding.explanation)), ("fix", .string(finding.fix))]
        return .object(members)
    }

    func text() -> String {
        guard !findings.isEmpty else { return "\(host.source): no findings\n" }
        return findings.map { text($0) + "\n" }.joined()
            + "\(findings.count) finding\(findings.count == 1 ? "" : "s")\n"
    }

    func text(_ finding: Finding) -> String {
        let table = host.firewall == .nftables ? "\(finding.family?.rawValue ?? "") \(finding.table)" : finding.table
        var line = "\(finding.severity.rawValue): \(finding.id.rawValue) in \(table)"
        if !finding.chain.isEmpty { line += "/\(finding.chain)" }
        if let rule = finding.rule {
            if let location = Self.location(rule.provenance) { line += " (\(location))" }
            line += "\n    \(ownRule(rule, finding))"
        }
        if let expected = finding.expectedRule {
            line += "\n    policy wants: \(spell(expected, finding, expected: true))"
            if let origin = expected.provenance { line += "\n      from \(origin)" }
        }
        if let other = finding.otherRule {
            line += "\n    other rule: \(spell(other, finding, expected: true))"
            if let origin = other.provenance { line += "\n      from \(origin)" }
        }
        if let subject = finding.subject { line += "\n    \(subject)" }
        if let origin = finding.policyOrigin { line += "\n      from \(origin)" }
        return line + "\n    \(finding.explanation)\n    fix: \(finding.fix)"
    }
}

extension Application {
    /// Reads the host and audits it: drift from the policy compiled for the host's kind of
    /// firewall, else risks.
    public func audit(_ request: AuditRequest) throws -> AuditReport {
        let checked = try request.policy.map { try check($0, inventory: request.inventory) }
        let host = try read(
            request.capture, liveFirewall: try liveFirewall(backend: request.backend, policy: checked?.0))
        var findings: [Finding]
        var expected = Ruleset()
        if let (policy, sources) = checked {
            // Resolved for the firewall the host was read from (some layouts exist for one only).
            let backend = host.firewall == .nftables ? Backend.nftables : .iptables
            let (layout, _) = try compiler.resolve(
                layout: request.layout, backend: backend.rawValue, policy: policy, sources: sources
            ).get()
            expected = try compiler.lower(policy, sources: sources, layout: layout, backend: backend).get()
            if let alongside = try compiler.alongside(request.alongsideDocker, layout: layout, backend: backend).get() {
                // Drift only where Portcullis owns; the layout's other tables are the daemon's,
                // not another tool's. Risks are the whole host's.
                let whole = expected
                expected = alongside.project(whole)
                findings =
                    DriftAudit(expected: expected, actual: host.ruleset, unreadTables: host.unreadTables).findings()
                    .filter { finding in
                        finding.id != .foreignTableOverrides
                            || !whole.tables.contains { $0.name == finding.table && $0.family == finding.family }
                    } + RiskAudit(ruleset: host.ruleset).findings()
            } else {
                findings =
                    DriftAudit(expected: expected, actual: host.ruleset, unreadTables: host.unreadTables).findings()
            }
        } else {
            findings = RiskAudit(ruleset: host.ruleset).findings() + host.unreadTables.map(Self.notRead)
        }
        findings.sort { ($0.severity, $1.id) > ($1.severity, $0.id) }
        return AuditReport(findings: findings, host: host, isDrift: checked != nil, expected: expected)
    }

    /// Audits and prints the report.
    public func runAudit(_ request: AuditRequest, format: ReportFormat) throws -> RunStatus {
        let report = try audit(request)
        console.output(report.rendered(format))
        return report.status
    }

    static func notRead(_ table: String) -> Finding {
        Finding(
            id: .tableNotRead, severity: .medium, table: table, chain: "", rule: nil,
            explanation: "the host has table \(table), of a family Portcullis does not read; it was not audited",
            fix: "check it with 'nft list table \(table)'")
    }
}
