import PortcullisNet

/// What a Docker daemon decides about published ports that the policy leaves to it: the order
/// it programs a container's bindings in, and the host ports it chooses. Eras differ, so the
/// checked `Policy` holds only what the policy says (and the one host port every era hands out
/// first); each layout asks its era for the rest.
public enum DockerDaemon: Sendable {
    /// Docker 1.5 to 26: go-connections' `nat.SortPortMap` order (`DockerPortOrder`), and Docker
    /// 20.10's port allocator, whose IPv6 bindings count from a counter of their own.
    case docker2010
    /// Docker 27 and later: libnetwork sorts the bindings again (`sortAndNormPBs`); a
    /// daemon-chosen port is the same in both families.
    case docker27

    /// The daemon's port mappings for every container of the policy.
    public func portMappings(_ policy: Policy) -> PortMappings {
        switch self {
        case .docker2010:
            let allocation = PortAllocator.allocate(policy.containers, host: policy.host, network: policy.network)
            return PortMappings(era: self, ipv6Ports: allocation.ipv6Ports)
        case .docker27:
            return PortMappings(era: self, ipv6Ports: [:])
        }
    }
}

/// One port of a publish: `publish` indexes `Container.publishes`, `offset` is the port's place
/// in the publish's range.
public struct PublishedPort: Sendable, Hashable {
    public let publish: Int
    public let offset: Int
}

/// One host port mapped to one container port.
public struct PortBinding: Sendable {
    public let publish: Publish
    public let hostPort: UInt16
    public let containerPort: UInt16
}

/// What `DockerDaemon.portMappings(_:)` decided, for the layouts of one era.
public struct PortMappings: Sendable {
    let era: DockerDaemon
    /// Daemon-chosen IPv6 host ports that differ from `Publish.hostPorts`, by container name and
    /// position in `Container.publishes`.
    let ipv6Ports: [String: [Int: UInt16]]

    /// The host ports of a container's publish (by position) in one family.
    public func hostPorts(of container: Container, publish index: Int, family: IPFamily) -> PortRange {
        guard family == .ipv6, let port = ipv6Ports[container.name]?[index] else {
            return container.publishes[index].hostPorts
        }
        return PortRange(port)
    }

    /// A container's bindings in the order the era programs them, each port of a range a
    /// binding of its own.
    public func bindings(of container: Container, family: IPFamily = .ipv4) -> [PortBinding] {
        switch era {
        case .docker2010:
            DockerPortOrder.bindingOrder(of: container).map { binding(container, $0, family: family) }
        case .docker27:
            Self.sortedAndNormalized(
                container.publishes.indices.flatMap { index in
                    (0..<container.publishes[index].hostPorts.count).map {
                        binding(container, PublishedPort(publish: index, offset: $0), family: family)
                    }
                })
        }
    }

    private func binding(_ container: Container, _ position: PublishedPort, family: IPFamily) -> PortBinding {
        let publish = container.publishes[position.publish]
        let hostPorts = hostPorts(of: container, publish: position.publish, family: family)
        return PortBinding(
            publish: publish, hostPort: UInt16(Int(hostPorts.first) + position.offset),
            containerPort: UInt16(Int(publish.containerPorts.first) + position.offset))
    }

    /// Docker 27 and later sort the bindings again (`sortAndNormPBs`) after the daemon's
    /// `nat.SortPortMap`: highest host port first, daemon-chosen ports counting as 0, then
    /// highest container port, then protocol name. This is the order the Docker 28 and 29
    /// references show; it has not been checked against `sortAndNormPBs` where go-connections'
    /// comparator is inconsistent.
    private static func sortedAndNormalized(_ bindings: [PortBinding]) -> [PortBinding] {
        func key(_ b: PortBinding) -> (Int, Int, String) {
            (b.publish.hostPortIsEphemeral ? 0 : Int(b.hostPort), Int(b.containerPort), b.publish.transport.rawValue)
        }
        return bindings.sorted { a, b in
            let (ka, kb) = (key(a), key(b))
            if ka.0 != kb.0 { return ka.0 > kb.0 }
            if ka.1 != kb.1 { return ka.1 > kb.1 }
            return ka.2 < kb.2
        }
    }
}
