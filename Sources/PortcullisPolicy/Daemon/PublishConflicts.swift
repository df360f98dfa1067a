import PortcullisNet

/// Fixed host ports two publishes claim on the same address (or one on all addresses), which
/// the daemon refuses. Daemon-chosen ports cannot clash: the allocator skips taken ports and
/// refuses fixed ones it already handed out (`PortAllocator`). The families are apart, as in
/// Docker's allocator and its proxies (IPv6 sockets only): `[::]:P` takes port P on every IPv6
/// address and leaves `198.18.0.1:P` free; a publish without a host address binds the families
/// the allocator binds it in.
struct PublishConflicts {
    private struct Binding: Hashable {
        let address: IPAddress?
        let transport: TransportProtocol
        let port: UInt16
    }

    /// A publish by position: a host publishes hundreds of thousands of ports, and a copy of
    /// the publish per port cost more memory than everything else the checker keeps.
    private struct Holder {
        let container: Int32
        let publish: Int32
    }

    let network: (String) -> Network?
    let userlandProxy: Bool
    // Who holds each host port, by address; all addresses (nil) clash with every address.
    private var holders: [Binding: Holder] = [:]
    private var anyAddress: [IPFamily: [TransportProtocol: [UInt16: Holder]]] = [:]
    private var someAddress: [IPFamily: [TransportProtocol: [UInt16: Holder]]] = [:]
    private var diagnostics: [Diagnostic] = []

    private init(network: @escaping (String) -> Network?, userlandProxy: Bool) {
        self.network = network
        self.userlandProxy = userlandProxy
    }

    /// The conflicts among the containers' fixed host ports, each at the publish that comes second.
    static func find(in containers: [Container], host: HostSettings, network: @escaping (String) -> Network?)
        -> [Diagnostic]
    {
        var conflicts = PublishConflicts(network: network, userlandProxy: host.userlandProxy)
        // A container only on internal networks maps nothing, so it holds no host port.
        for (containerIndex, container) in containers.enumerated()
        where container.gatewayAttachment(network: network) != nil {
            for (publishIndex, publish) in container.publishes.enumerated() where !publish.hostPortIsEphemeral {
                conflicts.claim(
                    publish, of: container, as: Holder(container: Int32(containerIndex), publish: Int32(publishIndex)),
                    among: containers)
            }
        }
        return conflicts.diagnostics
    }

    private mutating func claim(
        _ publish: Publish, of container: Container, as holder: Holder, among containers: [Container]
    ) {
        let (address, families) = boundAddress(publish, of: container)
        let transport = publish.transport
        var clash: Holder?
        for family in families {
            for port in publish.hostPorts.first...publish.hostPorts.last where clash == nil {
                clash =
                    address == nil
                    ? anyAddress[family]?[transport]?[port] ?? someAddress[family]?[transport]?[port]
                    : holders[Binding(address: address, transport: transport, port: port)]
                        ?? anyAddress[family]?[transport]?[port]
            }
        }
        if let clash {
            let owner = containers[Int(clash.container)]
            let other = owner.publishes[Int(clash.publish)]
            diagnostics.append(
                Diagnostic(
                    "host port \(publish.hostPorts)/\(transport.rawValue) is already published by container '\(owner.name)' (line \(other.origin.location.line))",
                    at: SourceRange(start: publish.origin.location, length: 7),
                    hint: "two publishes cannot share a host address, port and protocol"))
        }
        for family in families {
            for port in publish.hostPorts.first...publish.hostPorts.last {
                if address == nil {
                    anyAddress[family, default: [:]][transport, default: [:]][port] =
                        anyAddress[family]?[transport]?[port] ?? holder
                } else {
                    let binding = Binding(address: address, transport: transport, port: port)
                    holders[binding] = holders[binding] ?? holder
                    someAddress[family, default: [:]][transport, default: [:]][port] =
                        someAddress[family]?[transport]?[port] ?? holder
                }
            }
        }
    }

    /// The host address a publish binds, its own, else its network's `host-binding` (nil for
    /// every address), and the families it binds in, as the allocator counts them
    /// (`PortAllocator`): IPv4 unless the address is IPv6; IPv6 for an IPv6 address, or with no
    /// address (or an unspecified `host-binding`) when the container has an IPv6 address there
    /// or the userland proxy runs.
    private func boundAddress(_ publish: Publish, of container: Container) -> (IPAddress?, [IPFamily]) {
        let gateway = container.gatewayAttachment(network: network)
        let address = publish.hostAddress ?? gateway?.1.hostBinding
        var families: [IPFamily] = []
        if (address?.family ?? .ipv4) == .ipv4 { families.append(.ipv4) }
        let bindsIPv6 =
            publish.hostAddress.map { $0.family == .ipv6 } ?? (gateway?.1.hostBinding?.isUnspecified ?? true)
        if bindsIPv6 && (gateway?.0.address6 != nil || userlandProxy) { families.append(.ipv6) }
        return (address.flatMap { $0.isUnspecified ? nil : $0 }, families)
    }
}
