import PortcullisNet

/// Fixed host ports two publishes claim on the same address (or one on all addresses), which
/// the daemon refuses. Daemon-chosen ports cannot clash: the allocator skips taken ports and
/// refuses fixed ones it already handed out (`PortAllocator`).
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
    // Who holds each host port, by address; all addresses (nil) clash with every address.
    private var holders: [Binding: Holder] = [:]
    private var anyAddress: [TransportProtocol: [UInt16: Holder]] = [:]
    private var someAddress: [TransportProtocol: [UInt16: Holder]] = [:]
    private var diagnostics: [Diagnostic] = []

    private init(network: @escaping (String) -> Network?) { self.network = network }

    /// The conflicts among the containers' fixed host ports, each at the publish that comes second.
    static func find(in containers: [Container], network: @escaping (String) -> Network?) -> [Diagnostic] {
        var conflicts = PublishConflicts(network: network)
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
        let address = boundAddress(publish, of: container)
        let transport = publish.transport
        var clash: Holder?
        for port in publish.hostPorts.first...publish.hostPorts.last where clash == nil {
            clash =
                address == nil
                ? anyAddress[transport]?[port] ?? someAddress[transport]?[port]
                : holders[Binding(address: address, transport: transport, port: port)] ?? anyAddress[transport]?[port]
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
        for port in publish.hostPorts.first...publish.hostPorts.last {
            if address == nil {
                anyAddress[transport, default: [:]][port] = anyAddress[transport]?[port] ?? holder
            } else {
                let binding = Binding(address: address, transport: transport, port: port)
                holders[binding] = holders[binding] ?? holder
                someAddress[transport, default: [:]][port] = someAddress[transport]?[port] ?? holder
            }
        }
    }

    /// The host address a publish binds: its own, else its network's `host-binding`; nil for
    /// every address.
    private func boundAddress(_ publish: Publish, of container: Container) -> IPAddress? {
        let address = publish.hostAddress ?? container.gatewayAttachment(network: network)?.1.hostBinding
        return address.flatMap { $0.isUnspecified ? nil : $0 }
    }
}
