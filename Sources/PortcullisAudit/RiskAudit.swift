import PortcullisIR
import PortcullisNet

/// One risk found in a ruleset, with what to do about it.
public struct Finding: Sendable, Equatable {
    public enum Severity: String, Sendable, Comparable, CaseIterable {
        case low
        case medium
        case high

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// What a finding is about. The raw values are the `id`s of the audit JSON schema
    /// (docs/audit.md), which CI gates and dashboards match on: they never change.
    public enum ID: String, Sendable, CaseIterable, Comparable {
        case chainMissing = "chain-missing"
        case chainNotHooked = "chain-not-hooked"
        case changedRule = "changed-rule"
        case dnatToUnknownAddress = "dnat-to-unknown-address"
        case dockerUserMissing = "docker-user-missing"
        case dockerUserNotFirst = "docker-user-not-first"
        case duplicateRule = "duplicate-rule"
        case foreignTableOverrides = "foreign-table-overrides"
        case forwardPolicyAccept = "forward-policy-accept"
        case iccOpen = "icc-open"
        case loopbackPublishReachable = "loopback-publish-reachable"
        case missingElement = "missing-element"
        case missingRule = "missing-rule"
        case policyDiffers = "policy-differs"
        case publishedToEveryone = "published-to-everyone"
        case ruleOrder = "rule-order"
        case setDiffers = "set-differs"
        case setMissing = "set-missing"
        case shadowedRule = "shadowed-rule"
        case tableMissing = "table-missing"
        case tableNotRead = "table-not-read"
        case unexpectedElement = "unexpected-element"
        case unexpectedRule = "unexpected-rule"

        /// By raw value, so that reports list findings of one severity alphabetically.
        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// A stable identifier, for CI gates and dashboards.
    public let id: ID
    public let severity: Severity
    public let table: String
    public let chain: String
    /// The rule concerned, if any.
    public let rule: Rule?
    public let explanation: String
    public let fix: String
    /// The table's family, when it matters (nftables rulesets hold several).
    public let family: TableFamily?
    /// For drift: the rule the policy wants where the host has `rule` (with its policy line).
    public let expectedRule: Rule?
    /// For drift in order: the rule `rule` should stay on the other side of.
    public let otherRule: Rule?
    /// What the finding is about when it is not a rule (a set element).
    public let subject: String?
    /// The policy statement behind a finding that is not about a rule.
    public let policyOrigin: Provenance?

    public init(
        id: ID, severity: Severity, table: String, chain: String, rule: Rule?, explanation: String, fix: String,
        family: TableFamily? = nil, expectedRule: Rule? = nil, otherRule: Rule? = nil, subject: String? = nil,
        policyOrigin: Provenance? = nil
    ) {
        self.id = id
        self.severity = severity
        self.table = table
        self.chain = chain
        self.rule = rule
        self.explanation = explanation
        self.fix = fix
        self.family = family
        self.expectedRule = expectedRule
        self.otherRule = otherRule
        self.subject = subject
        self.policyOrigin = policyOrigin
    }
}

/// Risk findings on a Docker-style host's ruleset (read from a live host or a saved file),
/// without a policy: the mistakes and leftovers users report against Docker.
public struct RiskAudit: Sendable {
    public let ruleset: Ruleset

    public init(ruleset: Ruleset) { self.ruleset = ruleset }

    public func findings() -> [Finding] {
        forwardPolicy() + dockerUserPlacement() + publishedEverywhere() + loopbackPublishes() + openICC()
            + unknownDNATTargets() + duplicates() + shadowed() + dockerBridgesRisks()
    }

    /// The risks that mean something on Docker 29's own nftables tables (`ip` / `ip6
    /// docker-bridges`) and on the native layout's `inet portcullis`: ports published to
    /// everyone, loopback publishes without the remote-loopback drop, ICC open, DNAT to
    /// addresses no bridge holds. (Duplicates and shadowed rules are found in every table.)
    func dockerBridgesRisks() -> [Finding] {
        ruleset.tables.filter { $0.name == "docker-bridges" }.flatMap { table in
            let dnats = (table.chain("nat-prerouting-and-output")?.rules ?? []).compactMap {
                rule -> (rule: Rule, port: PortRange?)? in
                guard case .dnat = rule.action else { return nil }
                return (rule, Self.port(rule))
            }
            let restricted = restrictedPorts(table.family)
            return dnats.flatMap { publishRisks(of: $0, in: table, restricted: restricted) }
                + Self.dnatToUnknownAddresses(dnats, in: table)
                + Self.openICC(in: table)
        }
    }

    /// A publish on every address with no source restriction, and one on a loopback address
    /// without the drop of the same traffic arriving from other hosts.
    /// `restricted`: the ports whose sources Portcullis' user table restricts.
    private func publishRisks(of dnat: (rule: Rule, port: PortRange?), in table: Table, restricted: [PortRange])
        -> [Finding]
    {
        var findings: [Finding] = []
        let destination = destinationAddress(of: dnat.rule)
        let sourced = dnat.rule.matches.contains {
            if case .address(.source, _, false) = $0 { true } else { false }
        }
        if destination == nil && !sourced
            && !restricted.contains(where: { port in dnat.port.map { port.overlaps($0) } ?? false })
        {
            findings.append(
                Self.finding(
                    .publishedToEveryone, .medium, table, "nat-prerouting-and-output", dnat.rule,
                    "port \(dnat.port.map(\.description) ?? "?") is published on every host address and nothing restricts its sources; host firewalls such as ufw do not see this traffic (it is forwarded, not input)",
                    "publish on one address, or add a source allow-list (publish ... from SOURCES)"))
        }
        if let destination, destination.family == .ipv4, IPPrefix.loopback(.ipv4).contains(destination.address) {
            let guarded = (table.chain("raw-PREROUTING")?.rules ?? []).contains { rule in
                rule.action == .drop && rule.matches.contains(.interface(.source, "lo", negated: true))
                    && rule.matches.contains(.address(.destination, destination))
                    && Self.port(rule).map { port in dnat.port.map { port.overlaps($0) } ?? false } ?? false
            }
            if !guarded {
                findings.append(
                    Self.finding(
                        .loopbackPublishReachable, .high, table, "nat-prerouting-and-output", dnat.rule,
                        "port \(dnat.port.map(\.description) ?? "?") is published on a loopback address, but no raw-PREROUTING rule drops packets for it that arrive from other hosts; a neighbour routing \(destination.address) to this host reaches the container (moby#45610)",
                        "restore Docker's 'DROP REMOTE LOOPBACK' rule (iifname != \"lo\" ip daddr \(destination.address) ... drop) in raw-PREROUTING, or restart the daemon"
                    ))
            }
        }
        return findings
    }

    /// The ports whose sources Portcullis' user table restricts (drops and returns on a port).
    private func restrictedPorts(_ family: TableFamily) -> [PortRange] {
        let user = ruleset.table(family, "portcullis-user")
        return (user?.chains ?? []).flatMap(\.rules).compactMap { rule -> PortRange? in
            guard rule.action == .drop || rule.action == .return else { return nil }
            return rule.matches.lazy.compactMap { match -> PortRange? in
                if case .originalDestinationPort(let ports) = match { return ports }
                if case .port(.destination, let ports) = match { return ports }
                return nil
            }.first
        }
    }

    /// DNAT to an address outside every subnet a bridge of the table masquerades.
    private static func dnatToUnknownAddresses(_ dnats: [(rule: Rule, port: PortRange?)], in table: Table)
        -> [Finding]
    {
        let subnets = masqueradedSubnets(
            table.chains.filter { $0.name.hasPrefix("nat-postrouting-out__") }.flatMap(\.rules))
        guard !subnets.isEmpty else { return [] }
        return dnats.compactMap { dnat in
            guard let address = unknownTarget(of: dnat.rule, subnets: subnets) else { return nil }
            return finding(
                .dnatToUnknownAddress, .medium, table, "nat-prerouting-and-output", dnat.rule,
                "DNAT to \(address), which no bridge subnet on this host holds: a leftover of a removed container?",
                "remove the rule (and its accept in the bridge's filter-forward-in chain), or re-apply the host's policy"
            )
        }
    }

    private static func openICC(in table: Table) -> [Finding] {
        table.chains.filter { $0.name.hasPrefix("filter-forward-in__") }.flatMap { chain in
            let bridge = String(chain.name.dropFirst("filter-forward-in__".count))
            return chain.rules.filter { $0.action == .accept && $0.comment?.text == "ICC" }.map { rule in
                finding(
                    .iccOpen, .low, table, chain.name, rule,
                    "containers on \(bridge) may connect to each other on every port",
                    "set 'icc deny' on the network and allow the flows it needs")
            }
        }
    }

    private static func finding(
        _ id: Finding.ID, _ severity: Finding.Severity, _ table: Table, _ chain: String, _ rule: Rule, _ why: String,
        _ fix: String
    ) -> Finding {
        Finding(
            id: id, severity: severity, table: table.name, chain: chain, rule: rule, explanation: why, fix: fix,
            family: table.family)
    }

    static func port(_ rule: Rule) -> PortRange? {
        rule.matches.lazy.compactMap { match -> PortRange? in
            if case .port(.destination, let ports) = match { return ports }
            return nil
        }.first
    }

    var filter: Table? { ruleset.tables.first { $0.name == "filter" } }
    var nat: Table? { ruleset.tables.first { $0.name == "nat" } }
    var raw: Table? { ruleset.tables.first { $0.name == "raw" } }

    func forwardPolicy() -> [Finding] {
        guard let forward = filter?.chain("FORWARD"), forward.base?.policy == .accept else { return [] }
        return [
            Finding(
                id: .forwardPolicyAccept, severity: .high, table: "filter", chain: "FORWARD", rule: nil,
                explanation:
                    "FORWARD accepts what no rule drops: containers' unpublished ports can be reached by anyone who routes to their addresses (Docker 1.5 left it so; later Docker sets DROP only when it enabled forwarding itself)",
                fix: "set the FORWARD policy to DROP (policy: forward-policy drop)")
        ]
    }

    /// DOCKER-USER must exist and be the first thing FORWARD does (moby#48560).
    func dockerUserPlacement() -> [Finding] {
        guard let filter, filter.chain("DOCKER") != nil, let forward = filter.chain("FORWARD") else { return [] }
        guard filter.chain("DOCKER-USER") != nil else {
            return [
                Finding(
                    id: .dockerUserMissing, severity: .high, table: "filter", chain: "FORWARD", rule: nil,
                    explanation:
                        "Docker's chains are there but DOCKER-USER is not: there is no place for rules that run before Docker's",
                    fix: "create DOCKER-USER and jump to it first from FORWARD (restart the daemon, or apply a policy)")
            ]
        }
        if forward.rules.first.map({ $0.matches.isEmpty && $0.action == .jump("DOCKER-USER") }) != true {
            return [
                Finding(
                    id: .dockerUserNotFirst, severity: .high, table: "filter", chain: "FORWARD",
                    rule: forward.rules.first,
                    explanation:
                        "FORWARD does not jump to DOCKER-USER first, so rules placed there may never see the traffic they are meant for (moby#48560)",
                    fix: "move '-j DOCKER-USER' to the top of FORWARD")
            ]
        }
        return []
    }

    /// The DNAT rules of published ports, with the host port they answer on.
    var dnats: [(chain: String, rule: Rule, port: PortRange?)] {
        (nat?.chains ?? []).flatMap { chain in
            chain.rules.compactMap { rule -> (String, Rule, PortRange?)? in
                guard case .dnat = rule.action else { return nil }
                let port = rule.matches.lazy.compactMap { match -> PortRange? in
                    if case .port(.destination, let ports) = match { return ports }
                    return nil
                }.first
                return (chain.name, rule, port)
            }
        }
    }

    func destinationAddress(of rule: Rule) -> IPPrefix? {
        rule.matches.lazy.compactMap { match -> IPPrefix? in
            if case .address(.destination, let prefix, false) = match { return prefix }
            return nil
        }.first
    }

    /// Published on every address with nothing that restricts who may connect.
    func publishedEverywhere() -> [Finding] {
        let restrictedPorts: [PortRange] = (filter?.chains ?? []).flatMap(\.rules).compactMap { rule in
            guard rule.action == .drop || rule.action == .return else { return nil }
            return rule.matches.lazy.compactMap { match -> PortRange? in
                if case .originalDestinationPort(let ports) = match { return ports }
                return nil
            }.first
        }
        return dnats.filter { dnat in
            destinationAddress(of: dnat.rule) == nil
                && !dnat.rule.matches.contains { if case .address(.source, _, _) = $0 { true } else { false } }
                && !restrictedPorts.contains { port in dnat.port.map { port.overlaps($0) } ?? false }
        }.map { dnat in
            Finding(
                id: .publishedToEveryone, severity: .medium, table: "nat", chain: dnat.chain, rule: dnat.rule,
                explanation:
                    "port \(dnat.port.map(\.description) ?? "?") is published on every host address and nothing restricts its sources; host firewalls such as ufw do not see this traffic (it is forwarded, not input)",
                fix: "publish on one address, or add a source allow-list (publish ... from SOURCES)")
        }
    }

    /// A port published on 127.0.0.1 is reachable from the network unless a raw rule drops
    /// packets for it that did not come from lo (moby#45610).
    func loopbackPublishes() -> [Finding] {
        let loopback = IPPrefix.loopback(.ipv4)
        let guarded: [PortRange] = (raw?.chain("PREROUTING")?.rules ?? []).compactMap { rule in
            guard rule.action == .drop, rule.matches.contains(.interface(.source, "lo", negated: true)) else {
                return nil
            }
            return rule.matches.lazy.compactMap { match -> PortRange? in
                if case .port(.destination, let ports) = match { return ports }
                return nil
            }.first
        }
        return dnats.filter { dnat in
            guard let destination = destinationAddress(of: dnat.rule), loopback.contains(destination.address) else {
                return false
            }
            return !guarded.contains { port in dnat.port.map { port.overlaps($0) } ?? false }
        }.map { dnat in
            Finding(
                id: .loopbackPublishReachable, severity: .high, table: "nat", chain: dnat.chain, rule: dnat.rule,
                explanation:
                    "port \(dnat.port.map(\.description) ?? "?") is published on a loopback address, but nothing drops packets for it that arrive from other hosts; a neighbour routing 127.0.0.1 to this host reaches the container (moby#45610)",
                fix:
                    "drop such packets in raw PREROUTING ('-d 127.0.0.1/32 ! -i lo -p tcp --dport PORT -j DROP', as Docker 28 does), or use --layout docker-28"
            )
        }
    }

    /// Containers on a bridge reach each other on every port.
    func openICC() -> [Finding] {
        (filter?.chains ?? []).flatMap { chain in
            chain.rules.compactMap { rule -> Finding? in
                guard rule.action == .accept, rule.matches.count == 2,
                    case .interface(.source, let input, false) = rule.matches[0],
                    case .interface(.destination, let output, false) = rule.matches[1], input == output
                else { return nil }
                return Finding(
                    id: .iccOpen, severity: .low, table: "filter", chain: chain.name, rule: rule,
                    explanation: "containers on \(input) may connect to each other on every port",
                    fix: "set 'icc deny' on the network and allow the flows it needs")
            }
        }
    }

    /// The bridge subnets masquerading rules name as their sources.
    static func masqueradedSubnets(_ rules: [Rule]) -> [IPPrefix] {
        rules.compactMap { rule in
            guard rule.action == .masquerade else { return nil }
            return rule.matches.lazy.compactMap { match -> IPPrefix? in
                if case .address(.source, let prefix, false) = match, !prefix.isHost { return prefix }
                return nil
            }.first
        }
    }

    /// The address a DNAT rule translates to, if none of the subnets holds it.
    static func unknownTarget(of rule: Rule, subnets: [IPPrefix]) -> IPAddress? {
        guard case .dnat(let address, _) = rule.action, !subnets.contains(where: { $0.contains(address) }) else {
            return nil
        }
        return address
    }

    /// DNAT to an address no bridge subnet holds: usually left behind by a crash (moby#15151).
    func unknownDNATTargets() -> [Finding] {
        let subnets = Self.masqueradedSubnets(nat?.chain("POSTROUTING")?.rules ?? [])
        guard !subnets.isEmpty else { return [] }
        return dnats.compactMap { dnat in
            guard let address = Self.unknownTarget(of: dnat.rule, subnets: subnets) else { return nil }
            return Finding(
                id: .dnatToUnknownAddress, severity: .medium, table: "nat", chain: dnat.chain, rule: dnat.rule,
                explanation:
                    "DNAT to \(address), which no bridge subnet on this host holds: a leftover of a removed container?",
                fix: "remove the rule (and its filter ACCEPT), or re-apply the host's policy")
        }
    }

    /// What makes two rules the same rule: not their comments or where they were read.
    struct RuleMeaning: Hashable {
        let matches: [Match]
        let action: Action?
        let effects: [Effect]
    }

    /// The same rule twice in one chain (moby#15151, #31647). Rules seen are hashed, so a chain
    /// of 20,000 DNAT rules costs 20,000 look-ups, not 200 million comparisons.
    func duplicates() -> [Finding] {
        ruleset.tables.flatMap { table in
            table.chains.flatMap { chain in
                var seen: Set<RuleMeaning> = []
                return chain.rules.compactMap { rule -> Finding? in
                    let meaning = RuleMeaning(matches: rule.matches, action: rule.action, effects: rule.effects)
                    guard !seen.insert(meaning).inserted else { return nil }
                    return Finding(
                        id: .duplicateRule, severity: .medium, table: table.name, chain: chain.name, rule: rule,
                        explanation:
                            "this rule appears earlier in the same chain; duplicates are left behind by daemon crashes and restarts and slow every packet",
                        fix: "remove the duplicate")
                }
            }
        }
    }

    /// Rules after an unconditional ACCEPT, DROP or RETURN can never match.
    func shadowed() -> [Finding] {
        ruleset.tables.flatMap { table in
            table.chains.flatMap { chain -> [Finding] in
                guard
                    let stop = chain.rules.firstIndex(where: {
                        $0.matches.isEmpty && [.accept, .drop, .return].contains($0.action)
                    }), stop + 1 < chain.rules.count
                else { return [] }
                return chain.rules[(stop + 1)...].map { rule in
                    Finding(
                        id: .shadowedRule, severity: .low, table: table.name, chain: chain.name, rule: rule,
                        explanation: "an unconditional rule above ends the chain, so this rule never matches",
                        fix: "move it above, or remove it")
                }
            }
        }
    }
}
