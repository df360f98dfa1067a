import PortcullisNet

/// Gives publishes without a host port a port from the ephemeral range the way Docker 20.10's
/// port allocator does: containers in start order; within a container, in Docker's binding
/// order (`DockerPortOrder.bindingOrder(of:)`), fixed host ports taken as they come; one counter
/// per host address and protocol that moves on from the last port it handed out, skipping
/// ports in use on that address or on all addresses (and, for all addresses, on any). A fixed
/// host port the daemon already handed out is refused, as Docker refuses to start the
/// container, and allocation stops there.
///
/// A publish that says the port the daemon chose (`chosen PORT`) takes that port, in every
/// family it binds, as the allocator handed it out: the counter moves on from it.
///
/// A container whose gateway network changes as its later networks are connected has its
/// mappings released and programmed again, so its ports are allocated once per change.
/// Docker 20.10 allocates each binding once per family, IPv4 first (`allocatePortsInternal`),
/// with separate counters for `0.0.0.0` and `::`: an IPv6 binding exists when the mapping
/// endpoint has an IPv6 address, or for any container while the userland proxy runs (it
/// proxies `::` to the IPv4 address). So the two counters can drift apart.
struct PortAllocator {
    /// A publish by the positions of its container and of itself in the container.
    struct Position: Hashable {
        let container: Int
        let publish: Int
    }

    struct Allocation {
        /// The port of the first family each daemon-chosen publish is bound in.
        var hostPorts: [Position: UInt16] = [:]
        /// IPv6 ports that differ from `hostPorts`, by container name and publish position.
        var ipv6Ports: [String: [Int: UInt16]] = [:]
        /// The publishes the daemon refuses.
        var diagnostics: [Diagnostic] = []
    }

    /// A counter, and the ports it keeps track of.
    private struct Key: Hashable {
        let address: IPAddress?
        let transport: TransportProtocol
        let ipv6: Bool
    }

    let host: HostSettings
    let network: (String) -> Network?
    /// Ports in use, with the daemon-chosen publish that holds each (nil for a fixed one).
    private var taken: [Key: [UInt16: Position?]] = [:]
    private var last: [Key: UInt16] = [:]
    private var allocation = Allocation()

    private init(host: HostSettings, network: @escaping (String) -> Network?) {
        self.host = host
        self.network = network
    }

    /// The ports the daemon chooses for the containers, started in order.
    static func allocate(_ containers: [Container], host: HostSettings, network: @escaping (String) -> Network?)
        -> Allocation
    {
        var allocator = PortAllocator(host: host, network: network)
        for index in containers.indices where !allocator.allocate(containers, index) { break }
        return allocator.allocation
    }

    /// One container's publishes, on each gateway it has in turn; false when the daemon refuses.
    private mutating func allocate(_ containers: [Container], _ index: Int) -> Bool {
        let container = containers[index]
        let order = DockerPortOrder.bindingOrder(of: container)
        var held: [(Key, UInt16)] = []
        for (attachment, gateway) in gatewayChanges(of: container) {
            for (key, port) in held { taken[key]?[port] = nil }
            held = []
            for position in order {
                let publish = container.publishes[position.publish]
                let keys = keys(publish, attachment: attachment, gateway: gateway)
                let bound =
                    publish.hostPortIsEphemeral
                    ? chooseHostPorts(Position(container: index, publish: position.publish), keys, containers)
                    : takeFixedPort(UInt16(Int(publish.hostPorts.first) + position.offset), keys, publish, containers)
                guard let bound else { return false }
                held += bound
            }
        }
        return true
    }

    /// The gateway endpoint after the run (first attachment) and after each connect that
    /// changes it.
    private func gatewayChanges(of container: Container) -> [(Attachment, Network)] {
        var gateways: [(Attachment, Network)] = []
        for count in 1...max(1, container.attachments.count) {
            if let gateway = container.gatewayAttachment(afterConnecting: count, network: network),
                gateways.last?.1.name != gateway.1.name
            {
                gateways.append(gateway)
            }
        }
        return gateways
    }

    /// The binding of each family (`validatePortBindingIPv4`, `validatePortBindingIPv6`).
    private func keys(_ publish: Publish, attachment: Attachment, gateway: Network) -> [Key] {
        let chosen = publish.hostAddress ?? gateway.hostBinding
        let address = chosen.flatMap { $0.isUnspecified ? nil : $0 }
        var keys: [Key] = []
        if chosen?.family ?? .ipv4 == .ipv4 {
            keys.append(Key(address: address, transport: publish.transport, ipv6: false))
        }
        let bindsIPv6 = publish.hostAddress.map { $0.family == .ipv6 } ?? (gateway.hostBinding?.isUnspecified ?? true)
        if bindsIPv6 && (attachment.address6 != nil || host.userlandProxy) {
            keys.append(Key(address: address, transport: publish.transport, ipv6: true))
        }
        return keys
    }

    /// Who holds a port for a counter: a port is in use for an address if it is bound on that
    /// address or on all addresses of its family; for all addresses, if it is bound on any.
    private func holder(_ port: UInt16, _ key: Key) -> Position?? {
        for (other, ports) in taken
        where other.transport == key.transport && other.ipv6 == key.ipv6
            && (other.address == key.address || other.address == nil || key.address == nil)
        {
            if let holder = ports[port] { return holder }
        }
        return nil
    }

    /// A port the policy fixed; nil when the daemon chose it for another publish already.
    private mutating func takeFixedPort(
        _ port: UInt16, _ keys: [Key], _ publish: Publish, _ containers: [Container]
    ) -> [(Key, UInt16)]? {
        var held: [(Key, UInt16)] = []
        for key in keys {
            if case .some(.some(let owner)) = holder(port, key) {
                let other = containers[owner.container]
                allocation.diagnostics.append(
                    Diagnostic(
                        "host port \(port)/\(publish.transport.rawValue) is already taken: the daemon chose it for container '\(other.name)' (line \(other.publishes[owner.publish].origin.location.line))",
                        at: SourceRange(start: publish.origin.location, length: 7),
                        hint:
                            "Docker refuses to start the container (port is already allocated); publish a host port the daemon has not handed out from \(host.ephemeralPorts)"
                    ))
                return nil
            }
            taken[key, default: [:]][port] = .some(nil)
            held.append((key, port))
        }
        return held
    }

    /// A daemon-chosen port in each family the publish binds; nil when the range is used up.
    private mutating func chooseHostPorts(_ position: Position, _ keys: [Key], _ containers: [Container])
        -> [(Key, UInt16)]?
    {
        let range = host.ephemeralPorts
        let publish = containers[position.container].publishes[position.publish]
        var ports: [Bool: UInt16] = [:]
        for key in keys {
            if let chosen = publish.chosenPort {
                guard range.contains(chosen), holder(chosen, key) == nil else {
                    allocation.diagnostics.append(
                        Diagnostic(
                            range.contains(chosen)
                                ? "host port \(chosen)/\(publish.transport.rawValue) is taken: the daemon cannot have chosen it"
                                : "host port \(chosen) is outside the ephemeral range \(range): the daemon cannot have chosen it",
                            at: SourceRange(start: publish.origin.location, length: 7),
                            hint: "the daemon hands out free ports of 'ephemeral-ports'"))
                    return nil
                }
                taken[key, default: [:]][chosen] = position
                last[key] = chosen
                ports[key.ipv6] = chosen
                continue
            }
            var candidate = last[key].map { $0 >= range.last ? range.first : $0 + 1 } ?? range.first
            var tries = 0
            while holder(candidate, key) != nil && tries < range.count {
                candidate = candidate >= range.last ? range.first : candidate + 1
                tries += 1
            }
            guard tries < range.count else {
                allocation.diagnostics.append(
                    Diagnostic(
                        "no free port left in the ephemeral range \(range)",
                        at: SourceRange(start: publish.origin.location, length: 1),
                        hint: "widen 'ephemeral-ports' in the host block or publish fixed host ports"))
                return nil
            }
            taken[key, default: [:]][candidate] = position
            last[key] = candidate
            ports[key.ipv6] = candidate
        }
        if let port = ports[false] ?? ports[true] {
            allocation.hostPorts[position] = port
            allocation.ipv6Ports[containers[position.container].name, default: [:]][position.publish] =
                ports[true].flatMap { $0 == port ? nil : $0 }
        }
        return keys.compactMap { key in ports[key.ipv6].map { (key, $0) } }
    }
}
