import PortcullisIR
import PortcullisNet

/// Differences in meaning between what a policy compiles to and what a host holds.
///
/// Rules are compared by what they do (their matches as a set, their effects without counters,
/// their verdict), not by how they are spelled, so the same check works on `iptables-save` text
/// and on nftables JSON, and comments or counters never count as drift. Per chain it reports
/// rules missing, unexpected or changed (a rule replaced in place, such as a port edited), and
/// rules in another order only when the order can change a verdict (two rules that can match the
/// same packet and do different things). Per table it reports chains that are missing or no
/// longer hooked (a base chain detached, or nothing jumping to a chain any more), sets and map
/// elements that differ, and tables of other tools that can drop what the policy accepts.
public struct DriftAudit: Sendable {
    public let expected: Ruleset
    public let actual: Ruleset
    /// Tables the reader could not hold in the IR ("bridge filter"): reported, never passed over.
    public let unreadTables: [String]

    public init(expected: Ruleset, actual: Ruleset, unreadTables: [String] = []) {
        self.expected = expected
        self.actual = actual
        self.unreadTables = unreadTables
    }

    /// A rule's meaning: what it matches, what it does. Comments, counters and where the rule
    /// came from do not count.
    struct Meaning: Hashable {
        let matches: Set<Match>
        let effects: [Effect]
        let action: Action?

        init(_ rule: Rule) {
            matches = Set(
                rule.matches.map { match in
                    switch match {
                    case .address(let direction, let prefix, let negated):
                        .address(direction, prefix.network, negated: negated)
                    case .originalDestination(let prefix): .originalDestination(prefix.network)
                    default: match
                    }
                })
            effects = rule.effects.filter { $0 != .counter }
            action = rule.action
        }
    }

    public func findings() -> [Finding] {
        var findings: [Finding] = []
        for table in expected.tables {
            guard let live = actual.table(table.family, table.name) else {
                findings.append(
                    Finding(
                        id: .tableMissing, severity: .high, table: table.name, chain: "", rule: nil,
                        explanation:
                            "the table the policy needs (\(table.family.rawValue) \(table.name)) is not on the host",
                        fix: "apply the policy (portcullis apply)", family: table.family))
                continue
            }
            findings += sets(table, live)
            let reachableLive = Self.reachable(live)
            for chain in table.chains {
                guard let liveChain = live.chain(chain.name) else {
                    findings.append(
                        Finding(
                            id: .chainMissing, severity: .high, table: table.name, chain: chain.name, rule: nil,
                            explanation: "the chain the policy needs is not on the host",
                            fix: "apply the policy (portcullis apply)", family: table.family))
                    continue
                }
                findings += hook(chain, liveChain, table: table, reachable: reachableLive)
                findings += rules(chain, liveChain, table: table)
            }
        }
        findings += foreignOverrides()
        for name in unreadTables {
            findings.append(
                Finding(
                    id: .tableNotRead, severity: .medium, table: name, chain: "", rule: nil,
                    explanation:
                        "the host has table \(name), of a family Portcullis does not read; its chains may drop traffic the policy accepts",
                    fix: "check it with 'nft list table \(name)'"))
        }
        return findings
    }

    // MARK: hooks and reachability

    /// Chains that run: base chains and every chain a reachable rule or verdict map jumps to.
    static func reachable(_ table: Table) -> Set<String> {
        var seen = Set(table.chains.filter(\.isBuiltin).map(\.name))
        var work = Array(seen)
        func targets(_ action: Action?) -> [String] {
            switch action {
            case .jump(let name)?, .goto(let name)?: return [name]
            case .verdictMap(_, let map)?:
                return table.sets.first { $0.name == map }?.elements.compactMap { element in
                    switch element.value {
                    case .verdict(.jump(let name))?, .verdict(.goto(let name))?: name
                    default: nil
                    }
                } ?? []
            default: return []
            }
        }
        while let name = work.popLast() {
            for rule in table.chain(name)?.rules ?? [] {
                for target in targets(rule.action) where !seen.contains(target) {
                    seen.insert(target)
                    work.append(target)
                }
            }
        }
        return seen
    }

    func hook(_ chain: Chain, _ live: Chain, table: Table, reachable: Set<String>) -> [Finding] {
        func finding(_ id: Finding.ID, _ explanation: String) -> Finding {
            Finding(
                id: id, severity: .high, table: table.name, chain: chain.name, rule: nil, explanation: explanation,
                fix: "apply the policy (portcullis apply)", family: table.family)
        }
        if let base = chain.base {
            guard let liveBase = live.base else {
                return [
                    finding(
                        .chainNotHooked,
                        "the chain should be attached to the \(base.hook.rawValue) hook and is not: its rules never run"
                    )
                ]
            }
            var result: [Finding] = []
            if (liveBase.hook, liveBase.type, liveBase.priority) != (base.hook, base.type, base.priority) {
                result.append(
                    finding(
                        .chainNotHooked,
                        "the chain is attached to \(liveBase.type.rawValue) \(liveBase.hook.rawValue) priority \(liveBase.priority), the policy wants \(base.type.rawValue) \(base.hook.rawValue) priority \(base.priority)"
                    ))
            }
            if base.policy != liveBase.policy {
                result.append(
                    finding(
                        .policyDiffers,
                        "the chain's policy is \(liveBase.policy.rawValue), the policy wants \(base.policy.rawValue)"))
            }
            return result
        }
        if Self.reachable(table).contains(chain.name) && !reachable.contains(chain.name) {
            return [
                finding(.chainNotHooked, "nothing on the host jumps to this chain any more: its rules never run")
            ]
        }
        return []
    }

    // MARK: rules

    enum Step {
        case same(Int, Int)
        case missing(Int)
        case unexpected(Int)
    }

    /// Aligns two lists by their longest common subsequence (common ends trimmed first, so that
    /// a few changes in a long chain stay cheap).
    static func align(_ a: [Meaning], _ b: [Meaning]) -> [Step] {
        var head = 0
        while head < a.count, head < b.count, a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head, tail < b.count - head, a[a.count - 1 - tail] == b[b.count - 1 - tail] {
            tail += 1
        }
        let x = Array(a[head..<(a.count - tail)])
        let y = Array(b[head..<(b.count - tail)])
        var steps: [Step] = (0..<head).map { .same($0, $0) }
        if x.count * y.count > 4_000_000 {
            // Too large to align: everything in the middle is reported as missing and unexpected.
            steps += x.indices.map { .missing(head + $0) } + y.indices.map { .unexpected(head + $0) }
        } else {
            var table = Array(repeating: Array(repeating: 0, count: y.count + 1), count: x.count + 1)
            for i in stride(from: x.count - 1, through: 0, by: -1) {
                for j in stride(from: y.count - 1, through: 0, by: -1) {
                    table[i][j] = x[i] == y[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
                }
            }
            var i = 0
            var j = 0
            while i < x.count || j < y.count {
                if i < x.count, j < y.count, x[i] == y[j] {
                    steps.append(.same(head + i, head + j))
                    i += 1
                    j += 1
                } else if j < y.count, i == x.count || table[i][j + 1] >= table[i + 1][j] {
                    steps.append(.unexpected(head + j))
                    j += 1
                } else {
                    steps.append(.missing(head + i))
                    i += 1
                }
            }
        }
        steps += (0..<tail).map { .same(a.count - tail + $0, b.count - tail + $0) }
        return steps
    }

    func rules(_ chain: Chain, _ live: Chain, table: Table) -> [Finding] {
        let comparison = ChainComparison(chain: chain, live: live, table: table)
        guard comparison.wanted != comparison.present else { return [] }
        return comparison.findings()
    }

    /// The policy's chain against the host's, aligned rule by rule: rules on both sides outside
    /// the common subsequence are missing, unexpected, changed or moved.
    private struct ChainComparison {
        let chain: Chain
        let live: Chain
        let table: Table
        let wanted: [Meaning]
        let present: [Meaning]

        init(chain: Chain, live: Chain, table: Table) {
            self.chain = chain
            self.live = live
            self.table = table
            wanted = chain.rules.map(Meaning.init)
            present = live.rules.map(Meaning.init)
        }

        func findings() -> [Finding] {
            let steps = DriftAudit.align(wanted, present)
            let (missing, unexpected, gaps) = Self.gaps(steps)
            let moved = self.moved(missing: missing, unexpected: unexpected)
            let movedWanted = Set(moved.map(\.wanted))
            let movedPresent = Set(moved.map(\.present))
            return gaps.flatMap { gapFindings($0, movedWanted: movedWanted, movedPresent: movedPresent) }
                + orderFindings(steps, moved: moved)
        }

        /// Every rule outside the common subsequence, and the runs of them between two rules
        /// both sides share.
        private static func gaps(_ steps: [Step]) -> (
            missing: [Int], unexpected: [Int], gaps: [(missing: [Int], unexpected: [Int])]
        ) {
            var missing: [Int] = []
            var unexpected: [Int] = []
            var gaps: [(missing: [Int], unexpected: [Int])] = [([], [])]
            for step in steps {
                switch step {
                case .same:
                    if !gaps[gaps.count - 1].missing.isEmpty || !gaps[gaps.count - 1].unexpected.isEmpty {
                        gaps.append(([], []))
                    }
                case .missing(let i):
                    missing.append(i)
                    gaps[gaps.count - 1].missing.append(i)
                case .unexpected(let j):
                    unexpected.append(j)
                    gaps[gaps.count - 1].unexpected.append(j)
                }
            }
            return (missing, unexpected, gaps)
        }

        /// A missing rule the host has elsewhere has moved: pairs of its positions.
        private func moved(missing: [Int], unexpected: [Int]) -> [(wanted: Int, present: Int)] {
            var moved: [(wanted: Int, present: Int)] = []
            var movedPresent = Set<Int>()
            for i in missing {
                if let j = unexpected.first(where: { present[$0] == wanted[i] && !movedPresent.contains($0) }) {
                    moved.append((i, j))
                    movedPresent.insert(j)
                }
            }
            return moved
        }

        /// In one gap, rules not moved: changed where both sides have one, else missing or
        /// unexpected.
        private func gapFindings(
            _ gap: (missing: [Int], unexpected: [Int]), movedWanted: Set<Int>, movedPresent: Set<Int>
        ) -> [Finding] {
            let gone = gap.missing.filter { !movedWanted.contains($0) }
            let added = gap.unexpected.filter { !movedPresent.contains($0) }
            let changed = zip(gone, added).map { i, j in
                finding(
                    .changedRule, .high, live.rules[j], "the host's rule differs from the one the policy needs here",
                    "apply the policy (portcullis apply)", expected: chain.rules[i])
            }
            let paired = min(gone.count, added.count)
            let missing = gone.dropFirst(paired).map { i in
                finding(
                    .missingRule, .high, chain.rules[i], "the policy needs this rule and the host does not have it",
                    "apply the policy (portcullis apply)")
            }
            let unexpected = added.dropFirst(paired).map { j in
                finding(
                    .unexpectedRule, .medium, live.rules[j], "the host has this rule and the policy does not say it",
                    "remove it, or describe it in the policy")
            }
            return changed + missing + unexpected
        }

        /// A moved rule matters only if it passed a rule that can match the same packets and
        /// does something else.
        private func orderFindings(_ steps: [Step], moved: [(wanted: Int, present: Int)]) -> [Finding] {
            var presentPosition: [Int: Int] = [:]
            for step in steps {
                if case .same(let i, let j) = step { presentPosition[i] = j }
            }
            for (i, j) in moved { presentPosition[i] = j }
            let placed = presentPosition.sorted { $0.key < $1.key }
            return moved.compactMap { i, j in
                let rule = chain.rules[i]
                let conflicting = placed.first { k, position in
                    k != i && (k < i) != (position < j) && DriftAudit.mayOverlap(rule, chain.rules[k])
                        && DriftAudit.differ(rule, chain.rules[k])
                }
                guard let other = conflicting?.key else { return nil }
                return finding(
                    .ruleOrder, .high, live.rules[j],
                    "this rule should come \(other < i ? "after" : "before") a rule that can match the same packets and does something else; the first match decides, so verdicts differ",
                    "apply the policy (portcullis apply)", expected: rule, other: chain.rules[other])
            }
        }

        private func finding(
            _ id: Finding.ID, _ severity: Finding.Severity, _ rule: Rule, _ explanation: String, _ fix: String,
            expected: Rule? = nil, other: Rule? = nil
        ) -> Finding {
            Finding(
                id: id, severity: severity, table: table.name, chain: chain.name, rule: rule, explanation: explanation,
                fix: fix, family: table.family, expectedRule: expected, otherRule: other)
        }
    }

    /// Whether the two rules do different things to a packet both match.
    static func differ(_ a: Rule, _ b: Rule) -> Bool {
        let x = Meaning(a)
        let y = Meaning(b)
        return x.action != y.action || x.effects != y.effects
    }

    /// Whether some packet can match both rules (false only when a field clearly tells them apart).
    static func mayOverlap(_ a: Rule, _ b: Rule) -> Bool {
        for x in a.matches {
            for y in b.matches where disjoint(x, y) { return false }
        }
        return true
    }

    static func disjoint(_ x: Match, _ y: Match) -> Bool {
        switch (x, y) {
        case (.interface(let d1, let n1, let neg1), .interface(let d2, let n2, let neg2)) where d1 == d2:
            if neg1 == neg2 { return !neg1 && n1 != n2 && !n1.hasSuffix("+") && !n2.hasSuffix("+") }
            return n1 == n2
        case (.address(let d1, let p1, false), .address(let d2, let p2, false)) where d1 == d2:
            return !p1.overlaps(p2)
        case (.address(let d1, let p1, let neg1), .address(let d2, let p2, let neg2)) where d1 == d2 && neg1 != neg2:
            return p1.network == p2.network
        case (.transport(let t1, false), .transport(let t2, false)): return t1 != t2
        case (.port(let d1, let r1), .port(let d2, let r2)) where d1 == d2: return !r1.overlaps(r2)
        case (.connectionState(let s1), .connectionState(let s2)): return s1.isDisjoint(with: s2)
        case (.destinationTranslated(let n1), .destinationTranslated(let n2)): return n1 != n2
        case (.localAddress(let d1, let n1), .localAddress(let d2, let n2)) where d1 == d2: return n1 != n2
        case (.originalDestinationPort(let r1), .originalDestinationPort(let r2)): return !r1.overlaps(r2)
        default: return false
        }
    }

    // MARK: sets and maps

    struct ElementMeaning: Hashable {
        let key: [SetValue]
        let value: MapResult?
    }

    func sets(_ table: Table, _ live: Table) -> [Finding] {
        var result: [Finding] = []
        for set in table.sets {
            func finding(
                _ id: Finding.ID, _ severity: Finding.Severity, _ explanation: String, subject: String? = nil,
                origin: Provenance? = nil
            ) -> Finding {
                Finding(
                    id: id, severity: severity, table: table.name, chain: "", rule: nil, explanation: explanation,
                    fix: "apply the policy (portcullis apply)", family: table.family, subject: subject,
                    policyOrigin: origin)
            }
            let kind = set.mapValue == nil ? "set" : "map"
            guard let liveSet = live.sets.first(where: { $0.name == set.name }) else {
                result.append(
                    finding(.setMissing, .high, "the \(kind) \(set.name) the policy needs is not on the host"))
                continue
            }
            guard liveSet.keyTypes == set.keyTypes, liveSet.mapValue == set.mapValue, liveSet.interval == set.interval
            else {
                result.append(
                    finding(.setDiffers, .high, "the \(kind) \(set.name) has another type or flags on the host"))
                continue
            }
            let wanted = set.elements.map { ElementMeaning(key: $0.key, value: $0.value) }
            let present = liveSet.elements.map { ElementMeaning(key: $0.key, value: $0.value) }
            var remaining = present
            for (element, meaning) in zip(set.elements, wanted) {
                if let index = remaining.firstIndex(of: meaning) {
                    remaining.remove(at: index)
                } else {
                    result.append(
                        finding(
                            .missingElement, .high, "the \(kind) \(set.name) lacks an element the policy needs",
                            subject: Self.describe(meaning), origin: element.provenance))
                }
            }
            for meaning in remaining {
                result.append(
                    finding(
                        .unexpectedElement, .medium,
                        "the \(kind) \(set.name) holds an element the policy does not say",
                        subject: Self.describe(meaning)))
            }
        }
        return result
    }

    static func describe(_ element: ElementMeaning) -> String {
        func text(_ value: SetValue) -> String {
            switch value {
            case .address(let prefix): prefix.isHost ? prefix.address.description : prefix.network.description
            case .ports(let ports): ports.description
            case .transport(let t): t.rawValue
            case .interface(let name): "\"\(name)\""
            }
        }
        var result = element.key.map(text).joined(separator: " . ")
        switch element.value {
        case .verdict(let action)?: result += " : \(action)"
        case .data(let values)?: result += " : " + values.map(text).joined(separator: " . ")
        case nil: break
        }
        return result
    }

    // MARK: other tools' tables

    /// Tables the policy does not have, with a base chain on a hook the policy uses that can drop
    /// packets: every base chain of a hook runs, and a drop in any of them is final.
    func foreignOverrides() -> [Finding] {
        var hooks: [TableFamily: Set<Hook>] = [:]
        for table in expected.tables {
            for chain in table.chains {
                if let base = chain.base { hooks[table.family, default: []].insert(base.hook) }
            }
        }
        var result: [Finding] = []
        for table in actual.tables where expected.table(table.family, table.name) == nil {
            let relevant: Set<Hook> =
                table.family == .inet ? hooks.values.reduce(into: []) { $0.formUnion($1) } : hooks[table.family] ?? []
            let drops = table.chains.contains { chain in
                chain.base?.policy == .drop || chain.rules.contains { Self.canDrop($0.action) }
            }
            guard drops,
                let chain = table.chains.first(where: { $0.base.map { relevant.contains($0.hook) } ?? false }),
                let base = chain.base
            else { continue }
            result.append(
                Finding(
                    id: .foreignTableOverrides, severity: .high, table: table.name, chain: chain.name, rule: nil,
                    explanation:
                        "table \(table.family.rawValue) \(table.name) is not the policy's, has a base chain on the \(base.hook.rawValue) hook (priority \(base.priority)) and can drop packets: every base chain of a hook runs and a drop in any is final, so it overrides what the policy accepts",
                    fix: "remove the table, or describe what it must allow in the policy", family: table.family))
        }
        return result
    }

    static func canDrop(_ action: Action?) -> Bool {
        switch action {
        case .drop?: true
        case .opaque(let text)?:
            ["drop", "reject", "queue"].contains { text.lowercased().contains($0) }
        default: false
        }
    }
}
