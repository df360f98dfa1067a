import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// The order an import writes a container's publishes in, and the proof that the policy gives
/// the host's rules back.
///
/// An import writes every host port as the host has it, daemon-chosen ones included: it cannot
/// tell a port Docker chose from one a user picked inside the ephemeral range. Docker 20.10
/// programs a container's bindings in `nat.SortPortMap`'s order (`DockerPortOrder`), which
/// counts a daemon-chosen port as host port 0 and depends on the order of the `publish`
/// lines; with the port written out, the order the host has may need another line order.
/// `docker2010` finds one. `Verification` then lowers the imported policy with the layout and
/// compares the published ports' rules with the host's, so that the importer keeps the
/// explicit form only where it compiles back to the same rules.
enum PublishOrder {
    /// The container with its publishes in a line order that Docker 20.10's sort turns into the
    /// order each family's DNAT rules have: the rules' own order when it does, else the first
    /// permutation that does (up to 8 lines), else unchanged.
    static func docker2010(_ container: ImportedContainer) -> ImportedContainer {
        let lines = container.publishes
        guard lines.count > 1, lines.allSatisfy({ $0.hostPort != nil }) else { return container }
        let targets = container.order.values.filter { !$0.isEmpty }
        func reproduces(_ arrangement: [Int]) -> Bool {
            let programmed = programmedOrder(lines, arrangement)
            return targets.allSatisfy { target in programmed.filter(target.contains) == target }
        }
        let identity = Array(lines.indices)
        var arrangement = identity
        var found = reproduces(identity)
        if !found && lines.count <= 8 {
            while nextPermutation(&arrangement) {
                if reproduces(arrangement) {
                    found = true
                    break
                }
            }
        }
        guard found, arrangement != identity else { return container }
        var reordered = container
        reordered.publishes = arrangement.map { lines[$0] }
        let position = Dictionary(uniqueKeysWithValues: arrangement.enumerated().map { ($1, $0) })
        reordered.order = container.order.mapValues { $0.map { position[$0]! } }
        return reordered
    }

    /// The line positions (of `lines`) in the order Docker 20.10 programs them when the policy
    /// writes them in `arrangement`'s order: Go's map order is the rotation of the sorted
    /// ports that starts at the first line's port, as the layout takes it.
    static func programmedOrder(_ lines: [ImportedPublish], _ arrangement: [Int]) -> [Int] {
        let port = { (line: ImportedPublish) in DockerPortOrder.Port(line.containerPort, line.transport) }
        var bindings: [DockerPortOrder.Port: [(hostPort: UInt16, binding: Int)]] = [:]
        for index in arrangement {
            bindings[port(lines[index]), default: []].append((lines[index].hostPort ?? 0, index))
        }
        let start = port(lines[arrangement[0]])
        let rotations = DockerPortOrder.rotations(of: Array(bindings.keys))
        let mapOrder = rotations.first { $0.first == start } ?? rotations[0]
        return DockerPortOrder.sortPortMap(ports: mapOrder, bindings: bindings).flatMap(\.bindings)
    }

    /// The next permutation in lexicographic order; false after the last.
    static func nextPermutation(_ values: inout [Int]) -> Bool {
        guard values.count > 1, var i = values.indices.dropLast().last(where: { values[$0] < values[$0 + 1] }) as Int?
        else { return false }
        let j = values.indices.last { values[$0] > values[i] }!
        values.swapAt(i, j)
        i += 1
        values[i...].reverse()
        return true
    }
}

/// Lowers an imported host with its layout and compares parts of the result with the rules it
/// was read from.
struct Verification {
    /// The host's rules, in the importer's normal form (iptables chains, matches in
    /// iptables-save order).
    let source: Ruleset
    let layout: any Layout
    let firewaller: Firewall

    /// The imported host's own rules in the same form; nil when the policy does not check or
    /// lower.
    func lowered(_ host: ImportedHost) -> Ruleset? {
        let (text, placed) = Printer.printPlaced(host.syntax(path: "imported"))
        guard case .success(let policy) = Checker.check(LoadedPolicy(placed, text: text)),
            case .success(let ruleset) = layout.lower(policy, for: firewaller)
        else { return nil }
        return DockerImporter(ruleset: ruleset).ruleset
    }

    /// Whether the chains named (table, chain) hold the same rules in both, in every family the
    /// source has. Comments are compared, counters are not (iptables-save shows none), nor the
    /// order of matches (nft JSON lists a port before conntrack's matches, the layout after).
    func same(_ host: ImportedHost, in chains: [(table: String, chain: String)]) -> Bool {
        guard let lowered = lowered(host) else { return false }
        func rules(_ ruleset: Ruleset, _ family: TableFamily, _ table: String, _ chain: String) -> [Rule] {
            (ruleset.table(family, table)?.chain(chain)?.rules ?? []).map {
                Rule(
                    $0.matches.sorted { "\($0)" < "\($1)" }, effects: $0.effects.filter { $0 != .counter }, $0.action,
                    comment: $0.comment)
            }
        }
        return [TableFamily.ip, .ip6].allSatisfy { family in
            source.table(family, "filter") == nil
                || chains.allSatisfy {
                    rules(source, family, $0.table, $0.chain) == rules(lowered, family, $0.table, $0.chain)
                }
        }
    }
}
