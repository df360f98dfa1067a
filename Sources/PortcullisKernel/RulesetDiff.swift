import JanssonKit
import PortcullisNet

/// What an apply changes, chain by chain and set by set: the lines (rules, chain policies, set
/// elements) that go and come. Lines are compared as written, so moving a rule shows as
/// `reordered` rather than as a removal and an addition.
public struct RulesetDiff: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public enum Kind: String, Sendable { case chain, set }
        public let kind: Kind
        /// Where, as the firewall names it: `iptables filter FORWARD`, `inet portcullis bridges`.
        public let place: String
        public let added: [String]
        public let removed: [String]
        public let reordered: Bool
    }

    public var groups: [Group] = []

    public var isEmpty: Bool { groups.isEmpty }

    /// Lines added and removed in chains (rules and policies) and in sets (elements).
    public func count(_ kind: Group.Kind) -> (added: Int, removed: Int) {
        groups.filter { $0.kind == kind }.reduce((0, 0)) { ($0.0 + $1.added.count, $0.1 + $1.removed.count) }
    }

    /// Compares two groupings of lines; groups keep the order they first appear in.
    init(from old: [LineGroup], to new: [LineGroup]) {
        var order: [LineGroup.Key] = []
        var oldLines: [LineGroup.Key: [String]] = [:]
        var newLines: [LineGroup.Key: [String]] = [:]
        for group in old {
            if oldLines[group.key] == nil && newLines[group.key] == nil { order.append(group.key) }
            oldLines[group.key, default: []] += group.lines
        }
        for group in new {
            if oldLines[group.key] == nil && newLines[group.key] == nil { order.append(group.key) }
            newLines[group.key, default: []] += group.lines
        }
        for key in order {
            let before = oldLines[key] ?? []
            let after = newLines[key] ?? []
            guard before != after else { continue }
            var remaining: [String: Int] = [:]
            for line in before { remaining[line, default: 0] += 1 }
            var added: [String] = []
            for line in after {
                if let count = remaining[line], count > 0 { remaining[line] = count - 1 } else { added.append(line) }
            }
            var unmatched = remaining
            let removed = before.filter { line in
                guard let count = unmatched[line], count > 0 else { return false }
                unmatched[line] = count - 1
                return true
            }
            groups.append(
                Group(
                    kind: key.kind, place: key.place, added: added, removed: removed,
                    reordered: added.isEmpty && removed.isEmpty))
        }
    }

    init() {}
}

/// The lines of one chain or set, as read from iptables-save or nft text.
struct LineGroup {
    struct Key: Hashable {
        let kind: RulesetDiff.Group.Kind
        let place: String
    }
    let key: Key
    var lines: [String]

    /// iptables-save tables: a group per chain, holding its declaration (`:FORWARD DROP`,
    /// `:DOCKER -`) and its rules, without counters.
    static func iptables(_ tables: [SavedTable], tool: String) -> [LineGroup] {
        tables.flatMap { table in
            table.chains.map { chain in
                LineGroup(
                    key: Key(kind: .chain, place: "\(tool) \(table.name) \(chain.name)"),
                    lines: [":\(chain.name) \(chain.policy)"]
                        + table.rules.filter { $0.chain == chain.name }.map(\.text))
            }
        }
    }

    /// `elements = { a,` / `b,` / `c }` become `a`, `b`, `c`; nil for other lines.
    static func elementLines(_ line: Substring) -> [Substring]? {
        var body = line
        guard body.hasPrefix("elements = {") || body.hasSuffix(",") || body.hasSuffix(" }") else { return nil }
        if body.hasPrefix("elements = {") { body = body.dropFirst("elements = {".count) }
        if body.hasSuffix("}") { body = body.dropLast() }
        return body.byteSplit(",").map(\.trimmed).filter { !$0.isEmpty }
    }
}

/// nft text (as `nft list` prints it and the renderers write it) split into its line groups,
/// one per chain (its rules and its `type ... hook ...` line) and per set or map (its
/// declaration lines and one line per element), and its skeleton: every line but the set and map
/// elements, in order. Two texts with the same skeleton differ in elements only, and an apply
/// can turn one into the other with `delete element` and `add element` commands. Read byte by
/// byte, since it runs over the whole ruleset (tens of megabytes) at every apply.
struct NftText {
    var groups: [LineGroup] = []
    var skeleton: [Substring] = []
    /// The places (`inet portcullis published`) of maps: a delete names an element's key alone.
    var maps: Set<String> = []
    /// The elements of each set and map, by place (their group's lines hold them too, after
    /// the declaration lines).
    var elements: [String: [String]] = [:]

    init(_ text: String) {
        var table = ""
        for raw in Substring(text).byteSplit("\n") {
            let line = raw.trimmed
            if line.isEmpty || line.hasPrefix("#") { continue }
            if let group = groups.indices.last, groups[group].key.kind == .set,
                let elements = LineGroup.elementLines(line)
            {
                let lines = elements.map(String.init)
                groups[group].lines += lines
                self.elements[groups[group].key.place, default: []] += lines
                continue
            }
            skeleton.append(line)
            if line.hasPrefix("table ") {
                let words = line.split(separator: " ")
                if words.count >= 3 { table = "\(words[1]) \(words[2])" }
            } else if line.hasSuffix(" {"), let kind = Self.groupKind(line) {
                let words = line.split(separator: " ", maxSplits: 2)
                let place = "\(table) \(words[1])"
                if line.hasPrefix("map ") { maps.insert(place) }
                groups.append(LineGroup(key: .init(kind: kind, place: place), lines: []))
            } else if line != "}", let group = groups.indices.last {
                groups[group].lines.append(String(line))
            }
        }
    }

    static func groupKind(_ line: Substring) -> RulesetDiff.Group.Kind? {
        if line.hasPrefix("chain ") { return .chain }
        if line.hasPrefix("set ") || line.hasPrefix("map ") { return .set }
        return nil
    }
}

extension Substring {
    /// Split at an ASCII separator, byte by byte (`split` walks characters, which costs seconds
    /// on a large ruleset); no empty pieces.
    func byteSplit(_ separator: Unicode.Scalar) -> [Substring] {
        utf8.split(separator: UInt8(ascii: separator)).map { Substring($0) }
    }

    /// Without leading and trailing spaces and tabs (Foundation's trimming is slow too).
    var trimmed: Substring {
        let utf8 = self.utf8
        guard let first = utf8.firstIndex(where: { $0 != 32 && $0 != 9 }) else { return self[endIndex...] }
        let last = utf8.lastIndex(where: { $0 != 32 && $0 != 9 })!
        return self[first...last]
    }
}

/// Bridges and container addresses whose rules an apply would remove although the new ruleset
/// names them nowhere: the containers there would lose connectivity (their forwarding,
/// published ports, masquerading). An apply refuses such a change unless told to prune.
public struct CutOff: Sendable, Equatable {
    public let interfaces: [String]
    public let addresses: [String]

    public var isEmpty: Bool { interfaces.isEmpty && addresses.isEmpty }

    /// Why an apply refuses: what would lose its rules, and how to go on.
    public var refusal: String {
        var lost: [String] = []
        if !interfaces.isEmpty { lost.append("interfaces \(interfaces.joined(separator: ", "))") }
        if !addresses.isEmpty { lost.append("container addresses \(addresses.joined(separator: ", "))") }
        return
            "this policy would remove every rule of \(lost.joined(separator: " and ")), which the host's ruleset has now; containers there would lose connectivity. Add their networks and containers to the policy, or rerun with --prune to remove them deliberately (nothing was changed)"
    }

    /// - Parameters:
    ///   - diff: what the apply changes.
    ///   - known: the interfaces and addresses the policy names (its bridges, external
    ///     interfaces and container addresses); their rules change by the policy's will.
    public init(_ diff: RulesetDiff, known: Set<String>) {
        var removed = Names()
        for group in diff.groups {
            for line in group.removed { removed.collect(line, inSet: group.kind == .set) }
        }
        interfaces = removed.interfaces.subtracting(known).sorted()
        addresses = removed.addresses.subtracting(known).sorted()
    }

    /// Interface names and container addresses a rule or element line names.
    struct Names {
        var interfaces: Set<String> = []
        var addresses: Set<String> = []

        static let setDeclarations: Set<Substring> = [
            "type", "typeof", "flags", "policy", "size", "timeout", "comment", "counter", "auto-merge", "gc-interval",
        ]

        mutating func collect(_ line: String, inSet: Bool) {
            for match in line.matches(of: #/(?:^|\s)(?:-i|-o|iifname|oifname)(?: !=)? "?([^"\s]+)"?/#) {
                interfaces.insert(String(match.1))
            }
            for match in line.matches(
                of: #/(?:--to-destination|dnat(?: ip6?)? to) \[?([0-9a-fA-F.:]+?)\]?(?::\d+(?:-\d+)?)?(?:\s|$)/#)
            {
                insertAddress(match.1)
            }
            guard inSet, let first = line.split(separator: " ").first, !Self.setDeclarations.contains(first) else {
                return
            }
            // Elements: quoted names are interfaces (bridges sets, icc maps), and addresses
            // that a map yields are containers behind published ports.
            for match in line.matches(of: #/"([^"]+)"/#) { interfaces.insert(String(match.1)) }
            if let value = line.split(separator: " : ").dropFirst().last { insertAddress(value) }
        }

        mutating func insertAddress(_ text: Substring) {
            if let address = IPAddress(text) { addresses.insert(address.description) }
        }
    }
}

extension RulesetDiff {
    /// One line of counts: `3 rules added and 1 removed, 2 set elements added and 0 removed`.
    public var summary: String {
        let rules = count(.chain)
        let elements = count(.set)
        func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
        var parts = ["\(counted(rules.added, "rule")) added and \(rules.removed) removed"]
        if elements != (0, 0) {
            parts.append("\(counted(elements.added, "set element")) added and \(elements.removed) removed")
        }
        if groups.contains(where: \.reordered) { parts.append("rules reordered") }
        return parts.joined(separator: ", ")
    }

    /// Each changed chain and set with its lines, `+` added and `-` removed.
    public var text: String {
        groups.map { group in
            let heading = "\(group.place)\(group.kind == .set ? " (set)" : ""):"
            if group.reordered { return heading + " same rules, new order\n" }
            return heading + "\n" + group.removed.map { "  - \($0)\n" }.joined()
                + group.added.map { "  + \($0)\n" }.joined()
        }.joined()
    }

    public var json: JSON {
        let rules = count(.chain)
        let elements = count(.set)
        return .object([
            (
                "summary",
                .object([
                    ("rules_added", .integer(rules.added)), ("rules_removed", .integer(rules.removed)),
                    ("elements_added", .integer(elements.added)), ("elements_removed", .integer(elements.removed)),
                ])
            ),
            (
                "groups",
                .array(
                    groups.map { group in
                        .object([
                            ("kind", .string(group.kind.rawValue)), ("place", .string(group.place)),
                            ("added", .array(group.added.map { .string($0) })),
                            ("removed", .array(group.removed.map { .string($0) })),
                            ("reordered", .bool(group.reordered)),
                        ])
                    })
            ),
        ])
    }
}
