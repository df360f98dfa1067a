import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// The order an import writes a container's publishes in, which of its host ports it writes as
/// chosen by the daemon, and the proof that the policy gives the host's rules back.
///
/// An import writes host ports as the host has them where it can: it cannot tell a port Docker
/// chose from one a user picked inside the ephemeral range. Docker 20.10 programs a container's
/// bindings in `nat.SortPortMap`'s order (`DockerPortOrder`), which counts a daemon-chosen port
/// as host port 0 and depends on the order of the `publish` lines; so a port the daemon chose,
/// written out, may be programmed in another place among the container's others, and only the
/// daemon-chosen form (`publish [ADDRESS ->] PORT/PROTO`) puts it back. `docker2010` chooses,
/// container by container in creation order, the fewest ports in the ephemeral range to write
/// that way and a line order with which the sort gives each family's DNAT rules in the host's
/// order, and has the choice checked by lowering (the allocator must hand the same ports out).
/// Where no choice passes, the history left the allocator elsewhere than the containers the
/// rules show leave it (containers since stopped or removed, a network connected later): the
/// same search runs again with each port written with the port the daemon chose
/// (`chosen PORT`), which the allocator hands out as written.
enum PublishOrder {
    /// How many choices of daemon-chosen ports, line orders, and lowerings one container may
    /// cost: the search stays bounded on hosts with many ports per container.
    static let subsetLimit = 256
    static let arrangementLimit = 4
    static let loweringLimit = 24

    /// The containers with their publishes in a line order, and ports in the ephemeral range
    /// marked `daemonChosen`, that Docker 20.10's sort and allocator turn into the host's DNAT
    /// rules. `verify(containers, index)` lowers the first `index + 1` containers and says
    /// whether the last one's DNAT rules are the host's. A container with no port in the
    /// ephemeral range keeps every port written out, in the first line order the sort turns
    /// into the rules' order (unchecked: its ports are exact); one whose choices all fail the
    /// check, with their ports pinned too (`ImportedPublish.pinned`), is left as that too.
    static func docker2010(
        _ containers: [ImportedContainer], verify: ([ImportedContainer], Int) -> Bool
    ) -> [ImportedContainer] {
        var chosen = containers
        for index in chosen.indices {
            let container = chosen[index]
            let candidates = container.publishes.indices.filter { at in
                let publish = container.publishes[at]
                return publish.count == 1 && publish.hostPort.map(HostDeclarations.ephemeral.contains) == true
            }
            let explicit = arranged(container, daemonChosen: [])
            chosen[index] = explicit ?? container
            guard !candidates.isEmpty else { continue }
            search: for pinned in [false, true] {
                var lowerings = 0
                for subset in subsets(of: candidates, limit: subsetLimit) {
                    for candidate in arrangements(container, daemonChosen: Set(subset), pinned: pinned)
                        .prefix(arrangementLimit)
                    {
                        guard lowerings < loweringLimit else { continue search }
                        lowerings += 1
                        var trial = chosen
                        trial[index] = candidate
                        if verify(trial, index) {
                            chosen[index] = candidate
                            break search
                        }
                    }
                }
            }
        }
        return chosen
    }

    /// The first arrangement `arrangements` finds, or nil.
    static func arranged(_ container: ImportedContainer, daemonChosen: Set<Int>) -> ImportedContainer? {
        arrangements(container, daemonChosen: daemonChosen).first
    }

    /// Subsets of `values`, the smallest first (at most `limit`).
    static func subsets(of values: [Int], limit: Int) -> [[Int]] {
        var result: [[Int]] = [[]]
        func extend(_ prefix: [Int], from: Int, size: Int) {
            guard result.count < limit else { return }
            if prefix.count == size {
                result.append(prefix)
                return
            }
            for at in from..<values.count where values.count - at >= size - prefix.count {
                extend(prefix + [values[at]], from: at + 1, size: size)
            }
        }
        for size in 1...max(1, values.count) where values.count >= size { extend([], from: 0, size: size) }
        return Array(result.prefix(limit))
    }

    /// The container with the lines in `daemonChosen` marked so (and `pinned` with their port
    /// when `pinned`), in each line order that Docker
    /// 20.10's sort turns into the order each family's DNAT rules have. What the sort sees of a
    /// line order is which port comes first (Go's map order is the rotation of the sorted ports
    /// that starts there, as the layout takes it) and the order of each port's own lines: those
    /// are varied (up to 24 combinations for each first port), the rest stays in the rules'
    /// order, which comes first.
    static func arrangements(_ container: ImportedContainer, daemonChosen: Set<Int>, pinned: Bool = false)
        -> [ImportedContainer]
    {
        let lines = container.publishes
        guard !lines.isEmpty else { return [container] }
        let targets = [TableFamily.ip, .ip6].compactMap { container.order[$0] }.filter { !$0.isEmpty }
        let port = { (at: Int) in DockerPortOrder.Port(lines[at].containerPort, lines[at].transport) }
        var base: [Int] = []
        for at in Array(targets.joined()) + Array(lines.indices) where !base.contains(at) { base.append(at) }
        var ports: [DockerPortOrder.Port] = []
        for at in base where !ports.contains(port(at)) { ports.append(port(at)) }
        let groups = Dictionary(grouping: base, by: port)
        var choices: [[DockerPortOrder.Port: [Int]]] = [groups]
        for p in ports where groups[p]!.count > 1 {
            var permutation = Array(groups[p]!.indices)
            var variants: [[Int]] = []
            repeat {
                variants.append(permutation.map { groups[p]![$0] })
            } while variants.count < 6
                && nextPermutation(&permutation)
            choices = Array(
                choices.lazy.flatMap { choice in
                    variants.map { variant in choice.merging([p: variant]) { $1 } }
                }
                .prefix(24))
        }
        var orders: [[Int]] = []
        for first in ports {
            for choice in choices {
                var queues = choice
                var order = queues[first]!
                queues[first] = []
                for at in base where port(at) != first { order.append(queues[port(at)]!.removeFirst()) }
                if !orders.contains(order) { orders.append(order) }
            }
        }
        return orders.filter { arrangement in
            let programmed = programmedOrder(lines, arrangement, daemonChosen: daemonChosen)
            return targets.allSatisfy { target in programmed.filter(target.contains) == target }
        }
        .map { arrangement in
            var reordered = container
            reordered.publishes = arrangement.map { at in
                var publish = lines[at]
                publish.daemonChosen = daemonChosen.contains(at)
                publish.pinned = pinned && publish.daemonChosen
                return publish
            }
            let position = Dictionary(uniqueKeysWithValues: arrangement.enumerated().map { ($1, $0) })
            reordered.order = container.order.mapValues { $0.map { position[$0]! } }
            return reordered
        }
    }

    /// The line positions (of `lines`) in the order Docker 20.10 programs them when the policy
    /// writes them in `arrangement`'s order, the lines in `daemonChosen` as chosen by the daemon
    /// (host port 0 to the sort): Go's map order is the rotation of the sorted ports that
    /// starts at the first line's port, as the layout takes it.
    static func programmedOrder(_ lines: [ImportedPublish], _ arrangement: [Int], daemonChosen: Set<Int> = [])
        -> [Int]
    {
        let port = { (line: ImportedPublish) in DockerPortOrder.Port(line.containerPort, line.transport) }
        var bindings: [DockerPortOrder.Port: [(hostPort: UInt16, binding: Int)]] = [:]
        for index in arrangement {
            let hostPort = daemonChosen.contains(index) ? 0 : lines[index].hostPort ?? 0
            bindings[port(lines[index]), default: []].append((hostPort, index))
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

    /// Whether nat DOCKER's DNAT rules to the addresses `to` accepts are the same, in the same
    /// order, in both, in every family the source has.
    func sameDNAT(_ host: ImportedHost, to target: (IPAddress) -> Bool) -> Bool {
        guard let lowered = lowered(host) else { return false }
        func rules(_ ruleset: Ruleset, _ family: TableFamily) -> [Rule] {
            (ruleset.table(family, "nat")?.chain(DockerChain.docker)?.rules ?? []).filter { rule in
                if case .dnat(let address, _)? = rule.action { return target(address) }
                return false
            }
            .map { Rule($0.matches.sorted { "\($0)" < "\($1)" }, effects: [], $0.action, comment: $0.comment) }
        }
        return [TableFamily.ip, .ip6].allSatisfy { family in
            source.table(family, "nat") == nil || rules(source, family) == rules(lowered, family)
        }
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
