extension ImportedHost {
    /// The flows, with an `allow` end scoped to its network (`db@data`) where it is only on
    /// internal networks the other end is not on: unscoped, the statement would not cross into
    /// them (docs/language.md, "Flows stay on their networks"), though the rules read did.
    func scopedFlows() -> [Flow] {
        let internalNetworks = Set(networks.filter(\.internal).map(\.name))
        let attachments = Dictionary(
            containers.map { ($0.name, Set($0.attachments.map(\.network))) }, uniquingKeysWith: { $0.union($1) })
        let members = Dictionary(groups.map { ($0.name, $0.members) }, uniquingKeysWith: { first, _ in first })
        let networkNames = Set(networks.map(\.name))
        /// The networks of each container an end stands for.
        func ends(_ name: String) -> [Set<String>] {
            if networkNames.contains(name) { return [[name]] }
            return (members[name] ?? [name]).map { attachments[$0] ?? [] }
        }
        return flows.map { flow in
            guard flow.kind == .allow, !flow.source.contains("@"), !flow.destination.contains("@") else { return flow }
            var scoped = flow
            let sources = ends(flow.source)
            let destinations = ends(flow.destination)
            let crossing = sources.flatMap { source in destinations.map { (source, $0) } }.filter {
                $0.isDisjoint(with: $1)
            }
            for (side, sets) in [(\Flow.source, crossing.map(\.0)), (\Flow.destination, crossing.map(\.1))] {
                let only = sets.filter { !$0.isEmpty && $0.isSubset(of: internalNetworks) }
                guard let network = only.first?.sorted().first, !networkNames.contains(flow[keyPath: side]),
                    only.allSatisfy({ $0.contains(network) })
                else { continue }
                scoped[keyPath: side] = flow[keyPath: side] + "@" + network
            }
            return scoped
        }
    }
}
