import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// The native layout's publish maps and allow-lists, read back as publishes.
extension NativeImporter {
    /// The allow-lists of published ports, from both families' sets.
    func allowLists() -> [AllowList] {
        var restricted: [AllowList] = []
        for family in Self.families {
            for element in elements(Names.named(Names.allowListPorts, family)) {
                guard element.key.count == 3, let host = Self.prefix(element.key[0]),
                    case .transport(let transport) = element.key[1], case .ports(let ports) = element.key[2]
                else { continue }
                let address = host.length == 0 ? nil : host.address
                if !restricted.contains(where: { $0.host == address && $0.transport == transport && $0.ports == ports })
                {
                    restricted.append((address, transport, ports, []))
                }
            }
            for element in elements(Names.named(Names.allowListSources, family)) {
                guard element.key.count == 4, let source = Self.prefix(element.key[0]),
                    let host = Self.prefix(element.key[1]), case .transport(let transport) = element.key[2],
                    case .ports(let ports) = element.key[3]
                else { continue }
                let address = host.length == 0 ? nil : host.address
                if let at = restricted.firstIndex(where: {
                    $0.host == address && $0.transport == transport && $0.ports == ports
                }), !restricted[at].from.contains(source) {
                    restricted[at].from.append(source)
                }
            }
        }
        return restricted
    }

    /// Published ports, with their allow-lists, on the containers that hold their targets.
    mutating func readPublishes() {
        let restricted = allowLists()
        for (family, entries) in zip(Self.families, publishes) {
            for publish in coalesced(entries, restricted: restricted.map { ($0.host, $0.transport, $0.ports) }) {
                guard let at = containers.index(holding: publish.target) else {
                    notImported.append("a publish to \(publish.target): no container holds the address")
                    continue
                }
                var imported = publish.publish
                if let list = restricted.first(where: {
                    $0.host == imported.hostAddress && $0.transport == imported.transport
                        && $0.ports == PortRange(imported.hostPort!, imported.hostPort! + UInt16(imported.count - 1))
                }) {
                    if list.from.isEmpty {
                        notImported.append(
                            "the allow-list of \(imported.hostPort!)/\(imported.transport.rawValue) has no source of a family the host has networks in"
                        )
                    }
                    imported.allowedSources = list.from
                }
                // A publish on every address gives both families' elements: IPv6 adds only
                // publishes on an IPv6 host address.
                if family == .ipv6 {
                    if imported.hostAddress == nil {
                        if !containers[at].publishes.contains(imported) {
                            notImported.append(
                                "publish \(imported.hostPort!)/\(imported.transport.rawValue) to \(publish.target): on every IPv6 address only, which a publish cannot say"
                            )
                        }
                        continue
                    }
                }
                containers[at].publishes.append(imported)
            }
        }
        for list in restricted
        where !containers.contains(where: { container in
            container.publishes.contains {
                $0.hostAddress == list.host && $0.transport == list.transport && $0.hostPort == list.ports.first
            }
        }) {
            notImported.append("an allow-list for \(list.ports)/\(list.transport.rawValue) with no publish in the maps")
        }
    }

    // MARK: Published ports

    /// One port of a publish map (or a range of the range map): host address (nil: every
    /// address), protocol, host port(s), container address and port.
    struct PublishEntry {
        let host: IPAddress?
        let transport: TransportProtocol
        let hostPort: UInt16
        let containerPort: UInt16
        let target: IPAddress
        var count = 1

        var signature: String { "\(transport.rawValue)/\(hostPort)/\(containerPort)/\(count)" }
    }

    func publishEntries(_ family: IPFamily) -> [PublishEntry] {
        var entries: [PublishEntry] = []
        for (base, withHost) in [(Names.publishes, false), (Names.publishesOn, true)] {
            var ports: [[SetValue]: SetElement] = [:]  // by key: a host has thousands
            for element in elements(Names.named(Names.portMap(base), family)) where ports[element.key] == nil {
                ports[element.key] = element
            }
            for element in elements(Names.named(Names.addressMap(base), family)) {
                let key = element.key
                guard key.count == (withHost ? 3 : 2), case .data(let values)? = element.value,
                    let target = Self.prefix(values.first), case .transport(let transport) = key[key.count - 2],
                    case .ports(let hostPort) = key[key.count - 1],
                    case .data(let portValues)? = ports[key]?.value,
                    case .ports(let containerPort)? = portValues.first
                else { continue }
                let host = withHost ? Self.prefix(key[0])?.address : nil
                entries.append(
                    PublishEntry(
                        host: host, transport: transport, hostPort: hostPort.first, containerPort: containerPort.first,
                        target: target.address))
            }
        }
        for element in elements(Names.named(Names.publishRange, family)) {
            let key = element.key
            guard key.count == 3, let host = Self.prefix(key[0]), case .transport(let transport) = key[1],
                case .ports(let range) = key[2], case .data(let values)? = element.value,
                let target = Self.prefix(values.first)
            else { continue }
            entries.append(
                PublishEntry(
                    host: host.length == 0 ? nil : host.address, transport: transport, hostPort: range.first,
                    containerPort: range.first, target: target.address, count: range.count))
        }
        return entries
    }

    /// Publishes from map entries: an allow-list's range is one publish; other single ports run
    /// together while host and container ports step together (never with equal numbers: a range
    /// that keeps its ports is an element of the range map, not of the single-port maps).
    func coalesced(
        _ entries: [PublishEntry], restricted: [(host: IPAddress?, transport: TransportProtocol, ports: PortRange)]
    ) -> [(target: IPAddress, publish: ImportedPublish)] {
        func range(of entry: PublishEntry) -> PortRange? {
            restricted.first { list in
                list.host == entry.host && list.transport == entry.transport && list.ports.contains(entry.hostPort)
            }?.ports
        }
        // Grouped by container (any order of them will do: the result follows `entries`).
        let sorted = entries.enumerated().sorted { a, b in
            (a.element.target, a.element.hostPort, a.offset) < (b.element.target, b.element.hostPort, b.offset)
        }.map(\.element)
        var runs: [PublishEntry] = []
        for entry in sorted {
            if var last = runs.last, entry.count == 1, last.containerPort != last.hostPort,
                entry.target == last.target, entry.host == last.host, entry.transport == last.transport,
                Int(entry.hostPort) == Int(last.hostPort) + last.count,
                Int(entry.containerPort) == Int(last.containerPort) + last.count,
                range(of: entry) == range(of: last), range(of: entry).map({ $0.first != entry.hostPort }) ?? true
            {
                last.count += 1
                runs[runs.count - 1] = last
            } else {
                runs.append(entry)
            }
        }
        // Containers in the order of their first entry in the maps.
        let runsOf = Dictionary(grouping: runs, by: \.target)
        var seen: Set<IPAddress> = []
        return entries.filter { seen.insert($0.target).inserted }.flatMap { first in
            (runsOf[first.target] ?? []).map { run in
                (
                    first.target,
                    ImportedPublish(
                        hostAddress: run.host, hostPort: run.hostPort, containerPort: run.containerPort,
                        transport: run.transport, count: run.count)
                )
            }
        }
    }
}
