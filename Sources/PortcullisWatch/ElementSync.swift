import PortcullisCompiler
import PortcullisDocker
import PortcullisKernel
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// The watcher's delta path for the native layout: the elements a container's start or stop
/// adds or removes, found by compiling the policy bound to that container alone, instead of
/// the policy bound to the whole host (every stage of which is linear in the host).
///
/// It holds only where the full compile's table is the last one with exactly those elements
/// more or less. A container's elements are what the policy bound to it and the networks has
/// beyond the policy bound to the networks alone: those naming its addresses (`known`, egress
/// keys, publish map values) and those keyed by its host ports (publish maps). Flow pairs are
/// made by two containers together: a container that an `allow` or `deny` names (or a network
/// it is on) is left to a full sync, and so is a stop that would remove a set's element
/// naming none of its addresses (another container may make it too). So is anything that would
/// change the table's structure: a set created or emptied, a declaration that changes (`flags
/// interval`), a rule the table does not have, a publish key taken, an element not naming the
/// container that the table lacks, a change of networks, an address two containers hold, or
/// more than `limit` containers at once.
struct ElementSync: Sendable {
    /// What the kernel's table was compiled for, and holds.
    private(set) var inventory: Inventory
    private(set) var table: ElementTable
    /// Each address of the inventory, and the id of the container holding it (a policy with
    /// two containers on one address does not check, so the table's inventory has none).
    private(set) var owners: [String: String]
    /// Changes the kernel holds that no generation records yet.
    var unsettled = false
    /// The nftables ruleset generation the last element change left: while it has not moved,
    /// nobody else changed anything.
    var kernelGeneration: UInt32?

    static let limit = 32

    init(inventory: Inventory, table: ElementTable) {
        self.inventory = inventory
        self.table = table
        owners = Self.owners(inventory)
    }

    /// The table and inventory after `delta`, which the kernel now holds.
    mutating func take(_ delta: Delta, to new: Inventory) {
        for container in delta.stopped {
            for address in Self.addresses(container) where owners[address] == container.id { owners[address] = nil }
        }
        for container in delta.started {
            for address in Self.addresses(container) { owners[address] = container.id }
        }
        inventory = new
        table.apply(removing: delta.removed, adding: delta.added)
    }

    static func owners(_ inventory: Inventory) -> [String: String] {
        var owners: [String: String] = [:]
        for container in inventory.containers {
            for address in addresses(container) { owners[address] = container.id }
        }
        return owners
    }

    /// The containers that stopped (as they were) and started (as they are) between two
    /// inventories. Both are in start order and mostly the same: walked side by side, with a
    /// full comparison only where they part.
    static func changes(from old: [Inventory.Container], to new: [Inventory.Container]) -> (
        stopped: [Inventory.Container], started: [Inventory.Container]
    ) {
        var (i, j) = (0, 0)
        while i < old.count, j < new.count, old[i].id == new[j].id, old[i] == new[j] { (i, j) = (i + 1, j + 1) }
        var (k, l) = (old.count, new.count)
        while k > i, l > j, old[k - 1].id == new[l - 1].id, old[k - 1] == new[l - 1] { (k, l) = (k - 1, l - 1) }
        let before = Array(old[i..<k])
        let after = Array(new[j..<l])
        let kept = Set(before.map(\.self)).intersection(after)
        return (before.filter { !kept.contains($0) }, after.filter { !kept.contains($0) })
    }

    /// The policy bound to one container (and the networks): the checked policy and the
    /// rendered nft text; nil when it does not compile.
    typealias Slice = (Inventory) -> (policy: Policy, text: String)?

    /// What a change needs: element commands, with what they do to the table.
    struct Delta {
        var removed: [String: Set<String>] = [:]
        var added: [String: Set<String>] = [:]
        var started: [Inventory.Container] = []
        var stopped: [Inventory.Container] = []

        var count: (added: Int, removed: Int) {
            (added.values.reduce(0) { $0 + $1.count }, removed.values.reduce(0) { $0 + $1.count })
        }
    }

    /// The running policy bound to one slice of a host, as `apply` would compile it: nil
    /// unless it compiles for the native layout on nftables.
    static func slices(of loaded: LoadedPolicy, path: String, layout: String?, backend: String?, origin: String)
        -> Slice
    {
        { slice in
            let host = HostInventory(slice, origin: origin)
            guard let checked = try? Compiler().check(loaded, boundTo: host).get(),
                let compiled = try? Compiler().compileForKernel(
                    path, loaded: loaded, layout: layout, backend: backend, host: host
                ).get(),
                compiled.layout.name == NativeLayout.name, compiled.backend == .nftables,
                let text = compiled.filesByExtension["nft"]
            else { return nil }
            return (checked.0, text)
        }
    }

    /// The names the policy's `allow` and `deny` statements give their ends (containers,
    /// groups, networks; a scope after `@` dropped).
    static func flowEnds(_ loaded: LoadedPolicy) -> Set<String> {
        var names: Set<String> = []
        for case .rule(let rule) in loaded.statements where ["allow", "deny"].contains(rule.keyword.value) {
            let ends = rule.values + rule.clauses.filter { $0.keyword.value == "->" }.flatMap(\.values)
            for end in ends { names.insert(String(end.value.prefix { $0 != "@" })) }
        }
        return names
    }

    /// The delta from the table to `new`, or why only a full sync can say it. `flowEnds`: the
    /// policy's `flowEnds(_:)`.
    func delta(to new: Inventory, flowEnds: Set<String>, slice: Slice) -> Result<Delta, Fallback> {
        guard new.networks == inventory.networks else { return .failure(.networks) }
        let (stopped, started) = Self.changes(from: inventory.containers, to: new.containers)
        guard stopped.count + started.count <= Self.limit else { return .failure(.tooMany) }
        var delta = Delta(started: started, stopped: stopped)
        // Addresses must stay one container's each: an element naming one is that container's.
        let leaving = Set(stopped.map(\.id))
        var taken: Set<String> = []
        for container in started {
            for address in Self.addresses(container) {
                let owner = owners[address]
                guard owner == nil || leaving.contains(owner!), taken.insert(address).inserted else {
                    return .failure(.sharedAddress)
                }
            }
        }
        let skeleton = Set(table.skeleton)
        func bound(_ containers: [Inventory.Container]) -> (policy: Policy, table: ElementTable)? {
            slice(Inventory(source: new.source, daemon: new.daemon, networks: new.networks, containers: containers))
                .map { ($0.policy, ElementTable($0.text)) }
        }
        // The networks' own elements: what a container's slice has besides them is its own.
        guard let networks = bound([]) else { return .failure(.compile("no container")) }
        for (container, adding) in stopped.map({ ($0, false) }) + started.map({ ($0, true) }) {
            guard let (policy, part) = bound([container]) else { return .failure(.compile(container.name)) }
            if Self.inFlows(container, policy, ends: flowEnds) { return .failure(.flows(container.name)) }
            let own = Set(Self.addresses(container))
            guard part.skeleton.allSatisfy(skeleton.contains) else { return .failure(.structure(container.name)) }
            for (place, lines) in part.elements where !lines.isEmpty {
                // `flags interval` follows the elements: checked below, on what the set will hold.
                guard Self.declared(table.declarations[place]) == Self.declared(part.declarations[place]) else {
                    return .failure(.structure(container.name))
                }
                let mine = lines.subtracting(networks.table.elements[place] ?? [])
                guard lines.subtracting(mine).isSubset(of: table.elements[place] ?? []) else {
                    return .failure(.structure(container.name))
                }
                if adding {
                    delta.added[place, default: []].formUnion(mine)
                    continue
                }
                // A set's element naming none of its addresses may be another container's too
                // (a bridge some container publishes on); a map's key is one container's.
                guard table.maps.contains(place) || mine.allSatisfy({ Self.names(own, $0) }) else {
                    return .failure(.shared(container.name))
                }
                delta.removed[place, default: []].formUnion(mine)
            }
        }
        for (place, lines) in delta.removed {
            delta.removed[place] = lines.intersection(table.elements[place] ?? [])
        }
        // Structure the full compile would change: a set emptied, an interval set left with no
        // element that needs it, a map key taken by another value.
        for place in Set(delta.removed.keys).union(delta.added.keys) {
            let (have, removed, added) = (
                table.elements[place] ?? [], delta.removed[place] ?? [], delta.added[place] ?? []
            )
            if added.isSubset(of: removed) && have.count == removed.count { return .failure(.structure(place)) }
            // A set without the flag holds no element that needs it: only what comes in can.
            if table.declarations[place]?.contains(Self.intervalFlag) == true {
                guard
                    added.contains(where: Self.needsInterval)
                        || have.contains(where: { Self.needsInterval($0) && !removed.contains($0) })
                else { return .failure(.structure(place)) }
            } else if added.contains(where: Self.needsInterval) {
                return .failure(.structure(place))
            }
            if let keyed = table.keyed[place] {
                for line in added {
                    if let held = keyed[ElementTable.key(of: line)], held != line, !removed.contains(held) {
                        return .failure(.structure(place))
                    }
                }
            }
        }
        // An element both removed and added (a container changed, keeping it) stays.
        for (place, lines) in delta.added {
            let both = lines.intersection(delta.removed[place] ?? [])
            delta.added[place]?.subtract(both)
            delta.removed[place]?.subtract(both)
            delta.added[place]?.subtract(table.elements[place] ?? [])
        }
        return .success(delta)
    }

    /// Why a change takes a full sync, for the debug log.
    enum Fallback: Error, CustomStringConvertible {
        case networks, tooMany, sharedAddress
        case compile(String)
        case flows(String)
        case structure(String)
        case shared(String)

        var description: String {
            switch self {
            case .networks: "the networks changed"
            case .tooMany: "more than \(ElementSync.limit) containers changed"
            case .sharedAddress: "two containers hold one address"
            case .compile(let name): "the policy bound to \(name) alone does not compile"
            case .flows(let name): "a flow names \(name)"
            case .structure(let what): "the table's structure would change (\(what))"
            case .shared(let name): "an element of \(name) may be another container's too"
            }
        }
    }

    /// The container's addresses as nft writes them.
    static func addresses(_ container: Inventory.Container) -> [String] {
        container.endpoints.flatMap { [$0.ipv4?.address.description, $0.ipv6?.address.description].compactMap { $0 } }
    }

    /// Whether an element names one of the addresses (as a whole word).
    static func names(_ addresses: Set<String>, _ element: String) -> Bool {
        element.split(separator: " ").contains { addresses.contains(String($0)) }
    }

    /// Whether an `allow` or `deny` names the container, a group it is in (bound to it alone,
    /// the policy's groups hold it or not), or a network it is on.
    static func inFlows(_ container: Inventory.Container, _ policy: Policy, ends: Set<String>) -> Bool {
        ends.contains(container.name) || container.endpoints.contains { ends.contains($0.network) }
            || policy.groups.contains { name, members in ends.contains(name) && members.contains(container.name) }
    }

    static let intervalFlag = "flags interval"

    /// A set's declaration lines but `flags interval`.
    static func declared(_ lines: [String]?) -> [String]? { lines?.filter { $0 != intervalFlag } }

    /// Whether an element needs `flags interval`: a prefix or a port range (the layout's
    /// `lookupSet` decides by the same), outside quoted interface names.
    static func needsInterval(_ element: String) -> Bool {
        let bare = element.split(separator: "\"", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 0 }.map(\.element).joined()
        let bytes = Array(bare.utf8)
        return bytes.contains(UInt8(ascii: "/"))
            || bytes.indices.dropFirst().dropLast().contains { at in
                bytes[at] == UInt8(ascii: "-") && (48...57).contains(bytes[at - 1]) && (48...57).contains(bytes[at + 1])
            }
    }
}
